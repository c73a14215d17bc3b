"""A real PyTorch trainer: a small character-level decoder-only transformer trained from scratch.

Tokens are the distinct characters of the corpus, sorted by code point (id 0 is reserved for
characters the vocabulary has not seen, which only a generation prompt can contain). For Chinese
text this trains much faster than raw UTF-8 bytes: one token per character instead of three, so a
64-token context already spans a whole sentence and the loss falls within tens of steps.

Reproducibility. A trainer restored from ``checkpoint_files()`` at step k continues with exactly
the losses of the uninterrupted run, bit for bit, on CPU. What makes that hold:

* No global random number generator is used after construction. The initial weights are drawn
  inside ``torch.random.fork_rng`` after ``torch.manual_seed(seed)`` (the caller's global RNG is
  left untouched); the training batch of step s is drawn from a ``torch.Generator`` seeded with
  a hash of ``(seed, "train", s)``, and evaluation batches from ``(seed, "eval", i)``, so the data
  position is a pure function of the step. There is no dropout. Python's and NumPy's RNGs are not
  used at all, so ``state.json`` carries no RNG state.
* Everything carried from step to step is in the checkpoint: weights (``model.safetensors``,
  bit-exact float32), AdamW moments and step counts (``optimizer.pt``), the scheduler counter
  (``scheduler.pt``) and the step (``state.json``). The learning rate is recomputed from the step.
* ``torch.use_deterministic_algorithms(True)`` is switched on when a trainer is built (a process-wide
  setting); on CUDA ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` is set if the environment does not set it,
  which cuBLAS needs for deterministic matmuls. Attention is written out with plain matmuls and a
  causal mask instead of ``scaled_dot_product_attention``, whose fused CUDA kernels have
  non-deterministic backward passes.
* The same number of intra-op threads as the interrupted run: CPU matmuls split their reductions
  by thread, so 1 and 2 threads already give losses that differ in the 7th digit (measured with
  torch 2.13). ``state.json`` records ``torch.get_num_threads()`` and, on CPU, ``restore_files``
  calls ``torch.set_num_threads`` with the recorded count when the current one differs (a
  process-wide setting; on a machine with fewer cores it is slower but still exact). The trainer
  never changes the thread count of a fresh run.
* The same torch build and CPU family (vectorised kernels differ between e.g. AVX2 and AVX-512) and
  the same device type; ``state.json`` records the torch version, device and platform so a
  mismatch can be spotted.

On CUDA the run is deterministic with the settings above, but a CPU checkpoint resumed on a GPU (or
the reverse) continues with slightly different losses.

This module imports neither torch nor safetensors at module level (they are the optional extra
``ltm[torch]``): the API process reads ``TinyLMTrainer.name``, ``.description`` and
``.hyperparameters`` without them. The vocabulary, the model, ``load_checkpoint`` and ``generate``
live in ``ltm.trainers.tiny_lm_model``, imported inside the methods that need it;
``from ltm.trainers.tiny_lm import generate, load_checkpoint, TinyLM, ...`` still works through the
module-level ``__getattr__`` below, which imports them on first use.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import math
import os
import platform
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ltm import datasets
from ltm.settings import Settings
from ltm.trainers.base import Hyperparameter, InvalidConfig, StepOutput, Trainer, TrainerConfig, check_warmup

if TYPE_CHECKING:
    import torch

    from ltm.trainers.tiny_lm_model import CharVocab

LOG_EVERY_STEPS = 10
SAMPLE_CORPUS = Path(__file__).resolve().parent / "data" / "sample_zh.txt"
SAMPLE_DATASET_NAMES = ("sample", "中文示例语料")
TRAIN_FRACTION = 0.9
MIN_LR_RATIO = 0.1
WEIGHT_DECAY = 0.1
ADAM_BETAS = (0.9, 0.95)
GRAD_CLIP_NORM = 1.0

# Names that used to be defined here and now live in ltm.trainers.tiny_lm_model (they need torch).
_MODEL_NAMES = frozenset(
    {
        "CharVocab",
        "ModelConfig",
        "CausalSelfAttention",
        "Block",
        "TinyLM",
        "load_checkpoint",
        "generate",
        "UNKNOWN_TOKEN",
        "MODEL_FILE",
        "OPTIMIZER_FILE",
        "SCHEDULER_FILE",
        "STATE_FILE",
        "CHECKPOINT_FORMAT",
    }
)


def __getattr__(name: str) -> Any:
    """``from ltm.trainers.tiny_lm import generate`` and friends, imported (with torch) on first use."""
    if name in _MODEL_NAMES:
        value = getattr(importlib.import_module("ltm.trainers.tiny_lm_model"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODEL_NAMES})


# ---------------------------------------------------------------------------------------------
# Trainer


def _stream_seed(*parts: object) -> int:
    digest = hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _load_text(dataset: str) -> str:
    if not isinstance(dataset, str) or not dataset.strip():
        raise InvalidConfig("数据集不能为空：请填写 UTF-8 文本文件的路径或 URL，或使用内置的 sample / 中文示例语料")
    if dataset.strip() in SAMPLE_DATASET_NAMES:
        return SAMPLE_CORPUS.read_text(encoding="utf-8")
    if datasets.is_name(dataset):
        raise InvalidConfig(
            f"tiny-lm 不认识数据集名称 {dataset}：请使用内置语料 {' / '.join(SAMPLE_DATASET_NAMES)}，"
            "或数据集根目录（LTM_DATASET_ROOTS）中 UTF-8 文本文件的绝对路径"
        )
    try:
        data = datasets.read_bytes(dataset)
    except datasets.DatasetRefused as refused:
        raise InvalidConfig(f"不能读取数据集 {dataset}：{refused}") from None
    except (OSError, ValueError, ImportError) as error:
        raise InvalidConfig(f"无法读取数据集 {dataset}：{error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidConfig(f"数据集 {dataset} 不是 UTF-8 文本：{error}") from None


GIB = 1024**3
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
VOCAB_ESTIMATE = 8192  # distinct characters; the real vocabulary is known only once the dataset is read


def parameter_count(values: dict[str, Any]) -> int:
    """Weights of TinyLM (tiny_lm_model): embeddings, untied head, and 12·d² + 13·d per block."""
    d, layers = values["d_model"], values["n_layers"]
    return 2 * VOCAB_ESTIMATE * d + values["context_length"] * d + layers * (12 * d * d + 13 * d) + 2 * d


def training_memory_bytes(values: dict[str, Any]) -> int:
    """fp32 weights, gradients and AdamW's two moments, plus the activations one step keeps for backward."""
    d, layers, heads = values["d_model"], values["n_layers"], values["n_heads"]
    tokens, length = values["batch_size"] * values["context_length"], values["context_length"]
    per_layer = tokens * 14 * d + 3 * tokens * heads * length
    activations = layers * per_layer + 2 * tokens * VOCAB_ESTIMATE
    return 16 * parameter_count(values) + 4 * activations


class TinyLMTrainer(Trainer):
    name: ClassVar[str] = "tiny-lm"
    description: ClassVar[str] = "从零训练一个字符级的小型 Transformer 语言模型（PyTorch，CPU 或 GPU 均可）"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter(
            "learning_rate",
            "float",
            3e-3,
            "AdamW 的峰值学习率（先线性预热，再余弦衰减到峰值的 10%）",
            minimum=0.0,
            maximum=1.0,
            minimum_exclusive=True,
        ),
        Hyperparameter("batch_size", "int", 16, "每步的序列条数", minimum=1, maximum=4096),
        Hyperparameter("context_length", "int", 64, "每条序列的字符数（上下文长度）", minimum=2, maximum=4096),
        Hyperparameter("n_layers", "int", 2, "Transformer 层数", minimum=1, maximum=64),
        Hyperparameter("n_heads", "int", 4, "注意力头数，必须整除 d_model", minimum=1, maximum=64),
        Hyperparameter("d_model", "int", 128, "隐藏维度", minimum=8, maximum=8192),
        Hyperparameter("num_epochs", "int", 1, "训练轮数", minimum=1, maximum=1000),
        Hyperparameter(
            "steps_per_epoch", "int", 100, "每轮的步数，每轮结束时评估并保存检查点", minimum=1, maximum=1_000_000
        ),
        Hyperparameter("warmup_steps", "int", 10, "学习率线性预热的步数", minimum=0),
        Hyperparameter("seed", "int", 0, "随机种子：决定初始权重和每一步取到的数据"),
        Hyperparameter("eval_batches", "int", 4, "评估时在验证集上计算的批数", minimum=1, maximum=1000),
        Hyperparameter("device", "str", "auto", "auto（有 CUDA 用 GPU，否则用 CPU）、cpu、cuda 或 cuda:N"),
    )
    requires: ClassVar[tuple[str, ...]] = ("torch", "safetensors")

    @classmethod
    def check_together(cls, values: dict[str, Any]) -> None:
        if values["d_model"] % values["n_heads"]:
            raise InvalidConfig(
                f"超参数 d_model 必须能被 n_heads 整除，当前 d_model={values['d_model']}，n_heads={values['n_heads']}"
            )
        check_warmup(values)
        if not DEVICE_PATTERN.fullmatch(values["device"].strip().lower()):
            raise InvalidConfig(f"超参数 device 必须是 auto、cpu、cuda 或 cuda:N，当前值为 {values['device']!r}")
        needed, limit = training_memory_bytes(values), Settings().max_run_memory_gib * GIB
        if needed > limit:
            raise InvalidConfig(
                f"超参数 d_model、n_layers、batch_size、context_length 组合下训练约需 {needed / GIB:,.0f} GiB 内存"
                f"（约 {parameter_count(values) / 1e9:,.1f}B 参数），超过单个运行的上限 {limit / GIB:,.0f} GiB"
                "（LTM_MAX_RUN_MEMORY_GIB）：请减小模型或批大小"
            )

    def __init__(self, config: TrainerConfig) -> None:
        import torch

        from ltm.trainers.tiny_lm_model import CharVocab, ModelConfig, TinyLM, _resolve_device

        super().__init__(config)
        values = self.resolve_hyperparameters(config.hyperparameters or {})
        self._learning_rate = values["learning_rate"]
        self._batch_size = values["batch_size"]
        self._context_length = values["context_length"]
        self._n_layers = values["n_layers"]
        self._n_heads = values["n_heads"]
        self._d_model = values["d_model"]
        self._num_epochs = values["num_epochs"]
        self._steps_per_epoch = values["steps_per_epoch"]
        self._warmup_steps = values["warmup_steps"]
        self._seed = values["seed"]
        self._eval_batches = values["eval_batches"]
        self._device = _resolve_device(values["device"])

        text = _load_text(config.dataset)
        self._vocab = CharVocab.from_text(text)
        ids = self._vocab.encode_corpus(text)
        split = int(len(ids) * TRAIN_FRACTION)
        self._train_ids, self._eval_ids = ids[:split], ids[split:]
        needed = self._context_length + 1
        if len(self._eval_ids) < needed:
            raise InvalidConfig(
                f"数据集 {config.dataset} 太短：共 {len(ids)} 个字符，其中 10% 作为验证集，"
                f"至少需要 {math.ceil(needed / (1 - TRAIN_FRACTION))} 个字符"
                f"才能支持 context_length={self._context_length}"
            )

        torch.use_deterministic_algorithms(True)
        if self._device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

        self.model_config = ModelConfig(
            vocab_size=self._vocab.size,
            context_length=self._context_length,
            n_layers=self._n_layers,
            n_heads=self._n_heads,
            d_model=self._d_model,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_stream_seed(self._seed, "init"))
            model = TinyLM(self.model_config)
        model.vocab = self._vocab
        self.model = model.to(self._device)

        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self._learning_rate,
            betas=ADAM_BETAS,
        )
        # LambdaLR's counter is the number of completed steps; step s (1-based) uses learning_rate_at(s).
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda completed: self.learning_rate_at(completed + 1) / self._learning_rate
        )

        self._eval_cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._step = 0

    # -- Trainer interface ------------------------------------------------------------------

    @property
    def total_steps(self) -> int:
        return self._num_epochs * self._steps_per_epoch

    @property
    def steps_per_epoch(self) -> int:
        return self._steps_per_epoch

    @property
    def step(self) -> int:
        return self._step

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def vocab(self) -> CharVocab:
        return self._vocab

    def learning_rate_at(self, step: int) -> float:
        """Learning rate of training step `step` (1-based): linear warm-up, then cosine down to 10% of the peak."""
        if self._warmup_steps and step <= self._warmup_steps:
            return self._learning_rate * step / self._warmup_steps
        decay_steps = max(1, self.total_steps - self._warmup_steps)
        fraction = min(1.0, max(0.0, (step - self._warmup_steps) / decay_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * fraction))
        return self._learning_rate * (MIN_LR_RATIO + (1.0 - MIN_LR_RATIO) * cosine)

    def train_step(self) -> StepOutput:
        import torch
        from torch.nn import functional as F

        from ltm.trainers.tiny_lm_model import _gpu_utilization

        if self._step >= self.total_steps:
            raise RuntimeError(f"训练已完成全部 {self.total_steps} 步，不能继续执行训练步")
        step = self._step + 1
        on_cuda = self._device.type == "cuda"
        if on_cuda:
            torch.cuda.reset_peak_memory_stats(self._device)
        started = time.perf_counter()

        inputs, targets = self._batch(self._train_ids, _stream_seed(self._seed, "train", step))
        self.model.train()
        learning_rate = self.optimizer.param_groups[0]["lr"]
        logits = self.model(inputs)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"第 {step} 步的训练损失为 {loss.item()}，训练已发散："
                f"请降低 learning_rate（当前峰值 {self._learning_rate}）"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP_NORM)
        self.optimizer.step()
        self.scheduler.step()
        train_loss = float(loss.item())  # .item() synchronises with the GPU, so the timing below is real
        elapsed = max(time.perf_counter() - started, 1e-9)

        self._step = step
        metrics = {
            "train_loss": train_loss,
            "learning_rate": float(learning_rate),
            "tokens_per_second": float(inputs.numel() / elapsed),
        }
        utilization = 0.0
        if on_cuda:
            metrics["gpu_memory_mb"] = float(torch.cuda.max_memory_allocated(self._device) / 2**20)
            utilization = _gpu_utilization(self._device)
        return StepOutput(
            step=step,
            metrics=metrics,
            gpu_utilization=float(utilization),
            log=self._log_line(step, train_loss, learning_rate, metrics["tokens_per_second"]),
        )

    def evaluate(self) -> dict[str, float]:
        import torch
        from torch.nn import functional as F

        with torch.no_grad():
            self.model.eval()
            losses = []
            for inputs, targets in self._eval_set():
                logits = self.model(inputs)
                losses.append(float(F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))))
        eval_loss = sum(losses) / len(losses)
        return {"eval_loss": eval_loss, "eval_perplexity": math.exp(min(eval_loss, 50.0))}

    def checkpoint_files(self) -> dict[str, bytes]:
        from safetensors.torch import save as save_safetensors

        from ltm.trainers.tiny_lm_model import MODEL_FILE, OPTIMIZER_FILE, SCHEDULER_FILE, STATE_FILE, _to_bytes

        weights = {name: tensor.detach().cpu().contiguous() for name, tensor in self.model.state_dict().items()}
        return {
            MODEL_FILE: save_safetensors(weights, metadata={"format": "pt"}),
            OPTIMIZER_FILE: _to_bytes(self.optimizer.state_dict()),
            SCHEDULER_FILE: _to_bytes(self.scheduler.state_dict()),
            STATE_FILE: json.dumps(self.state(), ensure_ascii=False, allow_nan=False, indent=1).encode(),
        }

    def restore_files(self, files: dict[str, bytes]) -> None:
        import torch
        from safetensors.torch import load as load_safetensors

        from ltm.trainers.tiny_lm_model import MODEL_FILE, OPTIMIZER_FILE, SCHEDULER_FILE, STATE_FILE

        missing = [name for name in (MODEL_FILE, OPTIMIZER_FILE, SCHEDULER_FILE, STATE_FILE) if name not in files]
        if missing:
            raise ValueError(f"检查点缺少文件：{', '.join(missing)}")
        state = json.loads(files[STATE_FILE])
        if state.get("trainer") != self.name:
            raise ValueError(f"检查点来自训练器 {state.get('trainer')!r}，无法加载到 {self.name} 训练器")
        if state.get("vocab_sha256") != self._vocab.sha256:
            raise ValueError("检查点的词表与当前数据集构建的词表不一致，数据集可能已经改变")
        if state.get("model_config") != asdict(self.model_config):
            raise ValueError(
                f"检查点的模型结构 {state.get('model_config')} 与当前配置 {asdict(self.model_config)} 不一致"
            )
        step = state.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= self.total_steps:
            raise ValueError(f"检查点中的步数 {step!r} 不在 0 到 {self.total_steps} 之间")
        self.model.load_state_dict(load_safetensors(files[MODEL_FILE]))
        self.optimizer.load_state_dict(
            torch.load(io.BytesIO(files[OPTIMIZER_FILE]), map_location=self._device, weights_only=True)
        )
        self.scheduler.load_state_dict(torch.load(io.BytesIO(files[SCHEDULER_FILE]), weights_only=True))
        # CPU reductions depend on the thread count (see the module docstring): use the checkpoint's.
        threads = state.get("environment", {}).get("num_threads")
        if self._device.type == "cpu" and isinstance(threads, int) and 0 < threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self._step = step

    # -- helpers ----------------------------------------------------------------------------

    def state(self) -> dict:
        """The JSON part of a checkpoint (``state.json``)."""
        import torch

        from ltm.trainers.tiny_lm_model import CHECKPOINT_FORMAT

        return {
            "format": CHECKPOINT_FORMAT,
            "trainer": self.name,
            "step": self._step,
            "seed": self._seed,
            "model_config": asdict(self.model_config),
            "num_parameters": self.model.num_parameters(),
            "vocab": self._vocab.chars,
            "vocab_sha256": self._vocab.sha256,
            "dataset": self.config.dataset,
            "hyperparameters": {
                "learning_rate": self._learning_rate,
                "batch_size": self._batch_size,
                "context_length": self._context_length,
                "n_layers": self._n_layers,
                "n_heads": self._n_heads,
                "d_model": self._d_model,
                "num_epochs": self._num_epochs,
                "steps_per_epoch": self._steps_per_epoch,
                "warmup_steps": self._warmup_steps,
                "seed": self._seed,
                "eval_batches": self._eval_batches,
            },
            "rng": "未使用全局随机数生成器：第 s 步的数据由 (seed, s) 决定，无需保存随机数状态",
            "environment": {
                "torch": torch.__version__,
                "python": platform.python_version(),
                "device": str(self._device),
                "num_threads": torch.get_num_threads(),
                "platform": sys.platform,
            },
        }

    def _batch(self, ids: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        generator = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, len(ids) - self._context_length, (self._batch_size,), generator=generator)
        offsets = torch.arange(self._context_length + 1)
        windows = ids[starts[:, None] + offsets].long().to(self._device)
        return windows[:, :-1], windows[:, 1:]

    def _eval_set(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._eval_cache is None:
            self._eval_cache = [
                self._batch(self._eval_ids, _stream_seed(self._seed, "eval", index))
                for index in range(self._eval_batches)
            ]
        return self._eval_cache

    def _log_line(self, step: int, loss: float, learning_rate: float, tokens_per_second: float) -> str | None:
        if step % LOG_EVERY_STEPS and step not in (1, self.total_steps):
            return None
        epoch = (step - 1) // self._steps_per_epoch + 1
        return (
            f"第 {step}/{self.total_steps} 步（第 {epoch} 轮）- loss={loss:.4f} lr={learning_rate:.3g} "
            f"吞吐 {tokens_per_second:.0f} 字符/秒"
        )
