"""Question embedding on ONNX Runtime: the same sentence-transformers model, exported.

Why: a question is a dozen tokens, and ONNX Runtime runs the MiniLM graph for input
that small 2-3x faster than PyTorch's eager mode on one core (measured on a 2-core VM:
~5-6 ms against ~12-13 ms). Only the transformer is exported (torch.onnx, once per model,
cached on disk by a hash of its weights); tokenization and pooling stay
sentence-transformers' own, so questions get the vectors ingestion (PyTorch, batched)
stores for the same text.
A self-check at load compares the two on probe sentences and refuses the export when
they differ (the caller then keeps PyTorch).

sentence-transformers' own `backend="onnx"` needs optimum-onnx, which pins
transformers < 4.58 and so cannot be installed next to sentence-transformers >= 5.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Bump when the export below changes, so stale cached graphs are not reused.
EXPORT_FORMAT = "1"
# Lowest cosine similarity accepted between ONNX and PyTorch vectors of the same text
# (measured: > 0.999999 for MiniLM; int8 quantization, refused, gave ~0.96).
MIN_AGREEMENT = 0.9999
PROBES = (
    "How do I rotate the API key?",
    "Which GPU class does the 70B model need, and how many replicas run by default?",
)


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs every rewrite of its optimizer and prints progress to stdout;
    one line in our own log says what happens."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        # Its warnings are about the tracing (unused axis names, optional torchvision
        # ops); the agreement check after loading is what decides whether it is usable.
        with redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class OnnxExportRefused(RuntimeError):
    """The exported graph does not reproduce the PyTorch model's vectors."""


class OnnxQueryEncoder:
    """Embeds short texts with an ONNX Runtime copy of `model`'s transformer."""

    def __init__(self, model: Any, cache_dir: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.model = model
        self.transformer = model[0]
        # The model's own pooling (and Normalize, if it has one) after the transformer.
        self._after_transformer = list(model)[1:]
        # sentence-transformers >= 6 calls it preprocess, older versions tokenize.
        self._tokenize = getattr(model, "preprocess", None) or model.tokenize
        path = self._exported(cache_dir)
        options = ort.SessionOptions()
        # 0 = ONNX Runtime's default (one thread per physical core).
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.path = path
        self._check_agreement()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalized sentence embeddings, as `encode(normalize_embeddings=True)`."""
        features = self._tokenize(texts)
        feed = {name: features[name].numpy() for name in self.input_names}
        (token_embeddings,) = self.session.run(["last_hidden_state"], feed)
        pooled: dict[str, Any] = {
            "token_embeddings": torch.from_numpy(token_embeddings),
            "attention_mask": features["attention_mask"],
        }
        with torch.inference_mode():
            for module in self._after_transformer:
                pooled = module(pooled)
            vectors = torch.nn.functional.normalize(pooled["sentence_embedding"], dim=-1)
        return vectors.numpy()

    def _exported(self, cache_dir: Path) -> Path:
        digest = hashlib.sha256(f"{EXPORT_FORMAT}|{torch.__version__}".encode())
        for name, tensor in self.transformer.auto_model.state_dict().items():
            digest.update(name.encode())
            # The array's own buffer: the same bytes as tobytes(), without a copy of the
            # weights at every start.
            digest.update(tensor.detach().cpu().contiguous().numpy())
        path = cache_dir / f"transformer-{digest.hexdigest()[:24]}.onnx"
        if path.is_file():
            return path
        cache_dir.mkdir(parents=True, exist_ok=True)
        logger.info("exporting the embedding model to ONNX (once): %s", path)
        self._export(path)
        return path

    def _export(self, path: Path) -> None:
        auto_model = self.transformer.auto_model.eval()
        sample = self._tokenize(list(PROBES))
        # BERT-like models take token_type_ids, others (e.g. MPNet) do not.
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

        class LastHiddenState(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = auto_model

            def forward(
                self,
                input_ids: torch.Tensor,
                attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None,
            ) -> torch.Tensor:
                extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
                output = self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra)
                return output.last_hidden_state

        batch, length = torch.export.Dim("batch"), torch.export.Dim("sequence")
        # A temporary file in the same folder, then a rename: several API workers may
        # export at once, and none may read a half-written graph.
        handle, scratch = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
        os.close(handle)
        try:
            with _quiet_exporter():
                torch.onnx.export(
                    LastHiddenState().eval(),
                    tuple(sample[n] for n in names),
                    scratch,
                    input_names=names,
                    output_names=["last_hidden_state"],
                    dynamic_shapes=tuple({0: batch, 1: length} for _ in names),
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
            os.chmod(scratch, 0o644)  # mkstemp's 0600 would hide it from other users
            os.replace(scratch, path)
        finally:
            Path(scratch).unlink(missing_ok=True)

    def _check_agreement(self) -> None:
        reference = self.model.encode(
            list(PROBES), normalize_embeddings=True, show_progress_bar=False
        )
        ours = self.embed(list(PROBES))
        agreement = float((reference * ours).sum(axis=1).min())
        if agreement < MIN_AGREEMENT:
            raise OnnxExportRefused(
                f"ONNX vectors differ from PyTorch's (cosine {agreement:.6f} < "
                f"{MIN_AGREEMENT}): {self.path}"
            )
        self.agreement = agreement
