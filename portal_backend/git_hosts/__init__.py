"""Git hosts: credentials from the secret store, configured hosts, REST APIs."""
