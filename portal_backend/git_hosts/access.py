"""Running git against a remote with credentials from the portal's secret store.

Credentials never appear in a URL, an argument list, a log line or an error message:
HTTPS tokens travel as an ``http.<origin>.extraHeader`` given to git through
``GIT_CONFIG_*`` environment variables (scoped to that origin, so a redirect elsewhere
does not get them); SSH keys and known-hosts lines are written to a private temporary
folder for the one git command. Whatever git prints is passed through a redactor that
masks the token, its Basic-auth encoding and the key.

Secret names (scope ``global``, ``ragportal secrets set <name>``), per host as written
in a repository URL (``github.com``, ``gitlab.example.com``, ``127.0.0.1:8080``):
``git-token:<host>`` (HTTPS token), ``git-ssh-key:<host>`` (private key, SSH remotes),
``git-known-hosts:<host>`` (the host's public key lines; SSH refuses unknown hosts).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from portal_backend.db import make_engine, make_session_factory, session_scope
from portal_backend.provisioning.secrets import GLOBAL, SecretStore
from portal_backend.scaffolder.redaction import Redactor
from portal_backend.settings import Settings

SCP_LIKE = re.compile(r"^(?P<user>[\w.-]+)@(?P<host>[\w.-]+):(?P<path>(?!//).+)$")
# Who the token is on each kind of host when git speaks HTTPS (GitHub accepts any user
# name with a token; these are the documented ones).
DEFAULT_USERNAMES = {"github": "x-access-token", "gitlab": "oauth2", "git": "git"}


class GitRemoteError(Exception):
    """A remote cannot be reached or refused us; the message is safe to show."""


def token_secret(host: str) -> str:
    return f"git-token:{host}"


def ssh_key_secret(host: str) -> str:
    return f"git-ssh-key:{host}"


def known_hosts_secret(host: str) -> str:
    return f"git-known-hosts:{host}"


def remote_host(url: str) -> str:
    """``host[:port]`` of a git URL (https, http, ssh or scp-like); "" for local paths."""
    scp = SCP_LIKE.match(url)
    if scp and "://" not in url:
        return scp["host"]
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ssh", "git+ssh"):
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else ""
    return ""


def is_ssh(url: str) -> bool:
    return url.startswith(("ssh://", "git+ssh://")) or bool(
        SCP_LIKE.match(url) and "://" not in url
    )


@dataclass(frozen=True)
class Credentials:
    host: str = ""
    username: str = ""
    token: str = ""
    ssh_key: str = ""
    known_hosts: str = ""

    def redactor(self) -> Redactor:
        values = {"token": self.token, "key": self.ssh_key}
        if self.token:
            values["basic"] = _basic(self.username, self.token)
        return Redactor(values)


def _basic(username: str, token: str) -> str:
    return base64.b64encode(f"{username}:{token}".encode()).decode()


@lru_cache(maxsize=8)
def _factory(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(database_url))


def host_config(settings: Settings, host: str) -> dict[str, str]:
    return dict(settings.scaffolder_git_hosts.get(host) or {})


def load_credentials(
    settings: Settings, host: str, factory: sessionmaker[Session] | None = None
) -> Credentials:
    """The secret store's credentials for ``host`` (empty ones for a public remote)."""
    if not host:
        return Credentials()
    config = host_config(settings, host)
    kind = config.get("type", "git")
    username = config.get("username") or DEFAULT_USERNAMES.get(kind, "git")
    with session_scope(factory or _factory(settings.database_url)) as session:
        store = SecretStore(session, settings)
        return Credentials(
            host=host,
            username=username,
            token=store.get(GLOBAL, token_secret(host)) or "",
            ssh_key=store.get(GLOBAL, ssh_key_secret(host)) or "",
            known_hosts=store.get(GLOBAL, known_hosts_secret(host)) or "",
        )


def _base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_CONFIG", "GIT_SSH", "GIT_ASKPASS"))
    }
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,  # no credential helper of the machine's user
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="true",  # a missing credential fails instead of waiting for a prompt
        GIT_COMMITTER_NAME="rag-portal",
        GIT_COMMITTER_EMAIL="scaffolder@rag-portal.local",
    )
    return env


@contextmanager
def git_env(url: str, credentials: Credentials) -> Iterator[dict[str, str]]:
    """Environment for git commands that talk to ``url`` with ``credentials``."""
    env = _base_env()
    if not is_ssh(url):
        parts = urlsplit(url)
        if credentials.token and parts.scheme in ("http", "https"):
            origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"
            env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0=f"http.{origin}.extraHeader",
                GIT_CONFIG_VALUE_0=(
                    f"Authorization: Basic {_basic(credentials.username, credentials.token)}"
                ),
            )
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="ragportal-ssh-") as folder:
        known = Path(folder) / "known_hosts"
        known.write_text(credentials.known_hosts + "\n", encoding="utf-8")
        command = [
            "ssh",
            "-F",
            os.devnull,
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known}",
        ]
        if credentials.ssh_key:
            key = Path(folder) / "key"
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(credentials.ssh_key.strip() + "\n")
            command += ["-o", "IdentitiesOnly=yes", "-i", str(key)]
        env["GIT_SSH_COMMAND"] = " ".join(command)
        yield env


def run_git(
    *args: str,
    url: str,
    credentials: Credentials,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """One git command that talks to ``url``; output comes back already redacted."""
    redactor = credentials.redactor()
    with git_env(url, credentials) as env:
        try:
            result = subprocess.run(
                ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise GitRemoteError(f"git {args[0]} to {safe_url(url)} timed out") from exc
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        redactor.redact(result.stdout),
        redactor.redact(result.stderr),
    )


def safe_url(url: str) -> str:
    """``url`` without any user:password part (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def failure_hint(stderr: str, url: str, credentials: Credentials) -> str:
    """What to do about a refused git command, naming the secret to set."""
    host = credentials.host or remote_host(url)
    text = stderr.strip()
    if is_ssh(url) and "Host key verification failed" in text:
        name, _, port = host.partition(":")
        scan = f"ssh-keyscan -p {port} {name}" if port else f"ssh-keyscan {name}"
        return (
            f"{text} (store the host's key: ragportal secrets set {known_hosts_secret(host)} "
            f'--value "$({scan})")'
        )
    if re.search(
        r"\b(401|403)\b|Authentication failed|could not read Username|Permission denied", text
    ):
        secret = ssh_key_secret(host) if is_ssh(url) else token_secret(host)
        state = "is refused" if credentials.token or credentials.ssh_key else "is not set"
        return f"{text} (the secret {secret} {state}: ragportal secrets set {secret})"
    return text
