"""The torch half of the tiny-lm trainer: vocabulary, model, checkpoint loading and generation.

Everything here imports torch (and numpy) at module level, so ``ltm.trainers.tiny_lm`` imports this
module only inside the methods that need it: the API process reads ``TinyLMTrainer.name``,
``.description`` and ``.hyperparameters`` without torch installed. See ``ltm.trainers.tiny_lm`` for
what makes a run reproducible.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ltm.trainers.base import InvalidConfig

UNKNOWN_TOKEN = 0

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
STATE_FILE = "state.json"
CHECKPOINT_FORMAT = 1


# ---------------------------------------------------------------------------------------------
# Vocabulary


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


class CharVocab:
    """Characters sorted by code point; id 0 stands for any character outside the vocabulary."""

    def __init__(self, chars: str) -> None:
        self.chars = chars
        self._ids = {char: index + 1 for index, char in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls("".join(map(chr, np.unique(_code_points(text)))))

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.chars.encode("utf-8", "surrogatepass")).hexdigest()

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(char, UNKNOWN_TOKEN) for char in text]

    def encode_corpus(self, text: str) -> torch.Tensor:
        """Token ids of a whole corpus as int32, without a Python object per character."""
        known = np.fromiter(map(ord, self.chars), dtype=np.uint32, count=len(self.chars))
        points = _code_points(text)
        ids = np.searchsorted(known, points) + 1
        ids[(ids > len(known)) | (known[np.minimum(ids, len(known)) - 1] != points)] = UNKNOWN_TOKEN
        return torch.from_numpy(ids.astype(np.int32))

    def decode(self, ids) -> str:
        return "".join(self.chars[index - 1] if 0 < index <= len(self.chars) else "\ufffd" for index in ids)


# ---------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    context_length: int
    n_layers: int
    n_heads: int
    d_model: int


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        mask = torch.ones(config.context_length, config.context_length, dtype=torch.bool).tril()
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        head = width // self.n_heads
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.n_heads, head).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(head))
        scores = scores.masked_fill(~self.mask[:length, :length], float("-inf"))
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, 4 * config.d_model), nn.GELU(), nn.Linear(4 * config.d_model, config.d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    """GPT-style decoder: token + learned position embeddings, pre-LayerNorm blocks, untied output head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab: CharVocab | None = None
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.context_length, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def num_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())


# ---------------------------------------------------------------------------------------------
# Loading a checkpoint for inference


def _read_bytes(path: str) -> bytes:
    import fsspec

    with fsspec.open(path, "rb") as handle:
        return handle.read()


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> TinyLM:
    """Load a tiny-lm checkpoint folder (local path or fsspec URL) as a model ready for `generate`.

    Only ``model.safetensors`` and ``state.json`` are read; the vocabulary comes from
    ``state.json`` and is attached to the model as ``model.vocab``.
    """
    from safetensors.torch import load as load_safetensors

    from ltm.trainers.tiny_lm import TinyLMTrainer

    base = str(path).rstrip("/")
    state = json.loads(_read_bytes(f"{base}/{STATE_FILE}"))
    if state.get("trainer") != TinyLMTrainer.name:
        raise ValueError(f"{base} 不是 {TinyLMTrainer.name} 训练器的检查点（trainer={state.get('trainer')!r}）")
    model = TinyLM(ModelConfig(**state["model_config"]))
    model.load_state_dict(load_safetensors(_read_bytes(f"{base}/{MODEL_FILE}")))
    model.vocab = CharVocab(state["vocab"])
    return model.to(device).eval()


@torch.no_grad()
def generate(model: TinyLM, prompt: str, max_new_tokens: int = 50, temperature: float = 0.8, seed: int = 0) -> str:
    """Continue `prompt` by sampling `max_new_tokens` characters; `temperature=0` picks greedily.

    Sampling uses its own generator seeded with `seed`, so the same call returns the same text.
    """
    if model.vocab is None:
        raise ValueError("模型没有附带词表，请用 load_checkpoint 加载")
    model.eval()
    device = next(model.parameters()).device
    tokens = torch.tensor([model.vocab.encode(prompt) or [UNKNOWN_TOKEN]], dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    new_ids = []
    for _ in range(max_new_tokens):
        logits = model(tokens[:, -model.config.context_length :])[0, -1]
        logits[UNKNOWN_TOKEN] = float("-inf")
        if temperature <= 0:
            next_id = logits.argmax().view(1)
        else:
            probabilities = (logits / temperature).softmax(dim=-1)
            next_id = torch.multinomial(probabilities, 1, generator=generator)
        new_ids.append(int(next_id))
        tokens = torch.cat([tokens, next_id.view(1, 1)], dim=1)
    return prompt + model.vocab.decode(new_ids)


# ---------------------------------------------------------------------------------------------
# Helpers for the trainer


def _resolve_device(value: Any) -> torch.device:
    if not isinstance(value, str):
        raise InvalidConfig(f"超参数 device 必须是字符串 auto、cpu、cuda 或 cuda:N，当前值为 {value!r}")
    name = value.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise InvalidConfig(f"超参数 device 必须是 auto、cpu、cuda 或 cuda:N，当前值为 {value!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidConfig(f"超参数 device 为 {value!r}，但这台机器上没有可用的 CUDA 设备")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidConfig(f"超参数 device 为 {value!r}，但只有 {torch.cuda.device_count()} 块 GPU")
    return device


def _gpu_utilization(device: torch.device) -> float:
    """Fraction of the last sample period the GPU was busy, read through NVML (the nvidia-ml-py package).

    ``torch.cuda.utilization`` maps the torch device to its NVML index (CUDA_VISIBLE_DEVICES included)
    and initialises NVML on first use, so nothing touches NVML on CPU. Without NVML it reports 0.
    """
    try:
        return max(0.0, min(1.0, torch.cuda.utilization(device) / 100.0))
    except Exception:  # noqa: BLE001 - nvidia-ml-py missing, driver too old, NVML not supported
        return 0.0


def _to_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
