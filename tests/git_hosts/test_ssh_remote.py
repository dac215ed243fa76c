"""Publishing to and reading back from a git remote over SSH: a real OpenSSH server
(Debian's sshd, started here on its own port with its own host key), the portal's
private key and the host's known-hosts line from the secret store, nothing in logs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portal_backend.provisioning.repo_checkout import CheckoutError, export_tree, head_commit
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.base import ActionContext, ActionError, get_action
from portal_backend.settings import Settings
from tests.git_hosts.conftest import store_secret

load_actions()


@dataclass
class SshServer:
    port: int
    user: str
    root: Path
    client_key: str  # the private key the portal holds
    known_hosts: str  # "[127.0.0.1]:port ssh-ed25519 ..."

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def create_bare(self, relative: str) -> Path:
        bare = self.root / relative
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
        return bare

    def url(self, bare: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True
    )


@pytest.fixture
def ssh_server(tmp_path: Path) -> Iterator[SshServer]:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    assert Path(sshd).exists(), "sshd is missing: run scripts/setup.d/20-sshd.sh"
    folder = tmp_path / "sshd"
    folder.mkdir()
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = _free_port()
    user = (
        os.environ.get("USER")
        or subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    )
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    log = (folder / "sshd.log").open("w")
    process = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert process.poll() is None, (folder / "sshd.log").read_text()
        assert time.monotonic() < deadline, "sshd did not start"
        time.sleep(0.05)
    host_key = (folder / "host_key.pub").read_text().split()
    try:
        yield SshServer(
            port=port,
            user=user,
            root=tmp_path / "served",
            client_key=(folder / "client_key").read_text(),
            known_hosts=f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}",
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


def _ctx(settings: Settings, session_factory, root: Path, logs: list[str]) -> ActionContext:  # type: ignore[no-untyped-def]
    workspace = root / "workspaces" / "task-ssh"
    (workspace / "deploy" / "k8s").mkdir(parents=True)
    (workspace / "deploy" / "k8s" / "kustomization.yaml").write_text("resources: []\n")
    (workspace / "catalog-info.yaml").write_text("kind: Component\nmetadata: {name: svc}\n")
    return ActionContext(
        task_id="task-ssh", step_id="publish", workspace=workspace, settings=settings,
        session_factory=session_factory, user_ref="user:default/alice", log=logs.append,
    )  # fmt: skip


def test_publish_over_ssh_and_read_back_with_the_stores_key(
    settings: Settings, session_factory, tmp_path: Path, ssh_server: SshServer
) -> None:  # type: ignore[no-untyped-def]
    bare = ssh_server.create_bare("team/svc.git")
    url = ssh_server.url(bare)
    store_secret(settings, session_factory, f"git-ssh-key:{ssh_server.host}", ssh_server.client_key)
    store_secret(
        settings, session_factory, f"git-known-hosts:{ssh_server.host}", ssh_server.known_hosts
    )
    publish = get_action("publish:git")
    assert publish is not None
    logs: list[str] = []
    out = publish.run(_ctx(settings, session_factory, tmp_path, logs), {"repoUrl": url})
    pushed = (bare / "refs" / "heads" / "main").read_text().strip()
    assert out["commitHash"] == pushed
    assert out["repoContentsUrl"] == f"git+{url}#main"
    # Provisioning reads the published tree back over SSH with the same key.
    tree = export_tree(out["repoContentsUrl"], tmp_path / "checkout", settings, "deploy")
    assert (tree / "k8s" / "kustomization.yaml").read_text() == "resources: []\n"
    assert head_commit(out["repoContentsUrl"], settings) == pushed
    key_body = ssh_server.client_key.splitlines()[1]
    assert key_body not in str(out) and key_body not in "\n".join(logs)


def test_an_unknown_host_key_or_a_refused_key_name_the_secret(
    settings: Settings, session_factory, tmp_path: Path, ssh_server: SshServer
) -> None:  # type: ignore[no-untyped-def]
    bare = ssh_server.create_bare("team/svc.git")
    url = ssh_server.url(bare)
    store_secret(settings, session_factory, f"git-ssh-key:{ssh_server.host}", ssh_server.client_key)
    publish = get_action("publish:git")
    assert publish is not None
    # No known-hosts line: SSH refuses the host rather than trusting it on first use.
    with pytest.raises(ActionError) as unknown:
        publish.run(_ctx(settings, session_factory, tmp_path / "a", []), {"repoUrl": url})
    assert f"git-known-hosts:{ssh_server.host}" in str(unknown.value)
    # Known host, but a key the server does not accept.
    store_secret(
        settings, session_factory, f"git-known-hosts:{ssh_server.host}", ssh_server.known_hosts
    )
    other = tmp_path / "other_key"
    _keygen(other)
    store_secret(settings, session_factory, f"git-ssh-key:{ssh_server.host}", other.read_text())
    with pytest.raises(CheckoutError) as refused:
        export_tree(f"git+{url}#main", tmp_path / "x", settings)
    assert f"git-ssh-key:{ssh_server.host}" in str(refused.value)
    assert other.read_text().splitlines()[1] not in str(refused.value)
