"""Three-way merge of a template upgrade into a service's repository, with real git.

The two renders (recorded version and target version, same answers) become commits
``base`` and ``template-<target>`` (child of base); the repository's default branch tip
becomes a commit with the same tree whose parent is ``base``. ``git merge-tree
--write-tree`` (merge-ort: rename detection, conflict markers written into the files)
then merges the template's change into the team's tree exactly as ``git merge`` would
merge two branches that forked at the old render. The result is committed once, on top
of the real default-branch tip, and pushed as the branch ``rag-portal/upgrade-<target>``
to wherever the repository lives (this portal's bare repositories or a remote host,
with the secret store's credentials). The default branch itself is never pushed to.

Everything happens in a scratch bare repository: nothing of the renders reaches the
service's repository but the one upgrade commit.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from portal_backend.git_hosts.access import (
    Credentials,
    GitRemoteError,
    failure_hint,
    load_credentials,
    run_git,
    safe_url,
)
from portal_backend.provisioning.repo_checkout import PublishedTree
from portal_backend.settings import Settings

BRANCH_PREFIX = "rag-portal/upgrade-"
TRAILER = "Rag-Portal-Upgrade"


class MergeError(Exception):
    """The repository cannot be read, merged or pushed; the message is safe to show."""


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # merged | added | deleted | conflicted
    renamed_from: str | None = None

    def as_dict(self) -> dict[str, str]:
        found = {"path": self.path, "status": self.status}
        if self.renamed_from:
            found["renamedFrom"] = self.renamed_from
        return found


@dataclass
class MergeResult:
    tree: str
    changes: list[FileChange] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for change in self.changes:
            counted[change.status] = counted.get(change.status, 0) + 1
        return counted


def branch_name(version: str) -> str:
    return f"{BRANCH_PREFIX}{version}"


class UpgradeRepository:
    """A scratch bare repository beside the service's own (local or remote)."""

    def __init__(self, scratch: Path, published: PublishedTree, credentials: Credentials):
        self.git_dir = scratch / "upgrade.git"
        self.scratch = scratch
        self.published = published
        self.credentials = credentials
        self._git("init", "--quiet", "--bare", str(self.git_dir), bare=False)

    @classmethod
    def open(cls, scratch: Path, published: PublishedTree, settings: Settings) -> UpgradeRepository:
        if published.path:
            raise MergeError(
                f"{published.repo}: the service lives in {published.path}/ of its repository; "
                "upgrades handle repositories generated at their root"
            )
        try:
            credentials = load_credentials(settings, published.host)
        except RuntimeError as exc:  # the secret store's key changed
            raise MergeError(str(exc)) from exc
        return cls(scratch, published, credentials)

    # -- git plumbing ------------------------------------------------------------------

    def _env(self, index: Path | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "rag-portal",
            "GIT_AUTHOR_EMAIL": "scaffolder@rag-portal.local",
            "GIT_COMMITTER_NAME": "rag-portal",
            "GIT_COMMITTER_EMAIL": "scaffolder@rag-portal.local",
        }
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        return env

    def _git(
        self,
        *args: str,
        bare: bool = True,
        index: Path | None = None,
        ok: tuple[int, ...] = (0,),
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = ["git", *(("--git-dir", str(self.git_dir)) if bare else ()), *args]
        result = subprocess.run(
            command,
            env=self._env(index),
            capture_output=True,
            text=True,
            input=stdin,
            timeout=300,
        )
        if result.returncode not in ok:
            raise MergeError(f"git {args[0]} failed: {(result.stderr or result.stdout).strip()}")
        return result

    def _remote(self, *args: str) -> subprocess.CompletedProcess[str]:
        url = self.published.repo
        try:
            return run_git(
                "--git-dir", str(self.git_dir), *args, url=url, credentials=self.credentials
            )
        except GitRemoteError as exc:
            raise MergeError(str(exc)) from exc

    def _fail(self, what: str, result: subprocess.CompletedProcess[str]) -> MergeError:
        hint = failure_hint(result.stderr, self.published.repo, self.credentials)
        return MergeError(f"{what} {safe_url(self.published.repo)}: {hint}")

    # -- reading the service's repository ----------------------------------------------

    def fetch(self, branch: str) -> str | None:
        """The tip of ``branch`` (fetched, one commit deep); None if there is no such branch."""
        local = f"refs/remotes/origin/{branch}"
        result = self._remote(
            "fetch", "--quiet", "--depth", "1", self.published.repo, f"+refs/heads/{branch}:{local}"
        )
        if result.returncode != 0:
            if "couldn't find remote ref" in result.stderr:
                return None
            raise self._fail(f"cannot fetch {branch} from", result)
        return self._git("rev-parse", local).stdout.strip()

    def read(self, commit: str, path: str) -> str | None:
        result = self._git("show", f"{commit}:{path}", ok=(0, 128))
        return result.stdout if result.returncode == 0 else None

    def tree_of(self, commit: str) -> str:
        return self._git("rev-parse", f"{commit}^{{tree}}").stdout.strip()

    def message_of(self, commit: str) -> str:
        return self._git("log", "-1", "--format=%B", commit).stdout

    def parent_of(self, commit: str) -> str | None:
        # From the raw object: a commit fetched one deep is shallow, and git log would
        # show it without parents.
        raw = self._git("cat-file", "commit", commit).stdout
        parents = re.findall(r"^parent ([0-9a-f]+)$", raw.split("\n\n", 1)[0], re.MULTILINE)
        return parents[0] if parents else None

    # -- writing trees and commits -----------------------------------------------------

    def write_folder(self, folder: Path) -> str:
        """The tree object of every file under ``folder``."""
        index = self.scratch / f"index-{os.getpid()}-{id(folder)}"
        try:
            self._git("--work-tree", str(folder), "add", "--all", "--force", ".", index=index)
            return self._git("write-tree", index=index).stdout.strip()
        finally:
            index.unlink(missing_ok=True)

    def with_file(self, tree: str, path: str, content: str) -> str:
        """``tree`` with ``path`` set to ``content`` (the answers file)."""
        index = self.scratch / f"index-{os.getpid()}-answers"
        try:
            blob = self._git("hash-object", "-w", "--stdin", stdin=content).stdout.strip()
            self._git("read-tree", tree, index=index)
            self._git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", index=index)
            return self._git("write-tree", index=index).stdout.strip()
        finally:
            index.unlink(missing_ok=True)

    def commit(self, tree: str, message: str, *parents: str) -> str:
        args = [arg for parent in parents for arg in ("-p", parent)]
        return self._git("commit-tree", tree, *args, "-m", message).stdout.strip()

    # -- the merge ---------------------------------------------------------------------

    def merge(
        self, *, base: str, target: str, ours_head: str, default_branch: str, target_label: str
    ) -> MergeResult:
        """Merge the template's change (tree ``base`` -> tree ``target``) into the tree of
        ``ours_head``. Conflicting files keep git's markers, labelled with the default
        branch's name and ``target_label``."""
        base_commit = self.commit(base, "template render (recorded version)")
        target_commit = self.commit(target, f"{target_label} render", base_commit)
        ours_tree = self.tree_of(ours_head)
        ours_commit = self.commit(ours_tree, default_branch, base_commit)
        self._git("update-ref", f"refs/heads/{default_branch}", ours_commit)
        self._git("update-ref", f"refs/heads/{target_label}", target_commit)
        merged = self._git(
            "merge-tree",
            "--write-tree",
            "--name-only",
            "-z",
            "--no-messages",
            default_branch,
            target_label,
            ok=(0, 1),
        )
        fields = merged.stdout.split("\0")
        tree = fields[0].strip()
        conflicts = sorted({f for f in fields[1:] if f})
        return MergeResult(tree=tree, conflicts=conflicts)

    def changes(self, before_tree: str, after_tree: str, conflicts: list[str]) -> list[FileChange]:
        """Each file that differs between the default branch and the merged tree."""
        listed = self._git(
            "diff-tree", "-r", "-M", "--name-status", "-z", before_tree, after_tree
        ).stdout.split("\0")
        found: list[FileChange] = []
        conflicted = set(conflicts)
        i = 0
        while i < len(listed) and listed[i]:
            status = listed[i][0]
            if status in "RC":
                old, new = listed[i + 1], listed[i + 2]
                i += 3
                if status == "R":
                    found.append(FileChange(old, "deleted"))
                label = "conflicted" if new in conflicted else "added"
                found.append(FileChange(new, label, renamed_from=old))
                continue
            path = listed[i + 1]
            i += 2
            if path in conflicted:
                found.append(FileChange(path, "conflicted"))
            else:
                found.append(FileChange(path, {"A": "added", "D": "deleted"}.get(status, "merged")))
        return sorted(found, key=lambda c: (c.path, c.status))

    # -- pushing the branch ------------------------------------------------------------

    def push(self, commit: str, branch: str, expected: str | None) -> None:
        """Push ``commit`` as ``branch``, only if the branch is still ``expected`` (None:
        must not exist), so a concurrent change is never overwritten."""
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        result = self._remote(
            "push", "--quiet", lease, self.published.repo, f"{commit}:refs/heads/{branch}"
        )
        if result.returncode != 0:
            raise self._fail(f"cannot push {branch} to", result)


def is_portal_commit(message: str) -> bool:
    return re.search(rf"^{TRAILER}: ", message, re.MULTILINE) is not None
