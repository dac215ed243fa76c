"""The API caps torch's threads for question embedding; other providers leave torch alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from app.runtime import limit_torch_threads
from app.settings import Settings


@pytest.fixture
def torch_threads() -> Iterator[int]:
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_local_embeddings_run_on_the_configured_threads(torch_threads: int):
    limit_torch_threads(Settings(_env_file=None, embedding_provider="local"))
    assert torch.get_num_threads() == 1  # the default
    limit_torch_threads(
        Settings(_env_file=None, embedding_provider="local", query_embedding_threads=3)
    )
    assert torch.get_num_threads() == 3


def test_zero_or_another_provider_keeps_torch_default(torch_threads: int):
    torch.set_num_threads(2)
    limit_torch_threads(
        Settings(_env_file=None, embedding_provider="local", query_embedding_threads=0)
    )
    limit_torch_threads(Settings(_env_file=None, embedding_provider="hashing"))
    assert torch.get_num_threads() == 2


def test_negative_thread_count_is_refused():
    with pytest.raises(ValueError, match="query_embedding_threads"):
        Settings(_env_file=None, query_embedding_threads=-1)
