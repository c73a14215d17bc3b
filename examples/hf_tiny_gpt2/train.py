"""Fine-tune a tiny GPT-2 with `transformers.Trainer` on ltm's bundled Chinese corpus, as an ltm script run.

The model is built from a `GPT2Config` and the tokenizer is the corpus's own characters, so nothing is downloaded.
Hyperparameters come from the run (`ctx.hparams`); the Trainer's logs, checkpoints and stop flag go through
`ltm.integrations.transformers.LtmCallback`; a resumed run continues from `ctx.checkpoint.resume_path`.

    python train.py            # inside a run started by ltm (console, API, SDK or a direct flow call)
"""

from __future__ import annotations

import os
import time
from importlib import resources

# Everything is built here from the config and the corpus: never ask a hub for anything (read at import time).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging  # noqa: E402

import ltm.core  # noqa: E402
from ltm.integrations.transformers import LtmCallback, resume_from_checkpoint  # noqa: E402

DEFAULTS = {
    "max_steps": 60,
    "learning_rate": 3e-3,
    "batch_size": 8,
    "seed": 42,
    "save_steps": 20,
    "logging_steps": 1,
    "block_size": 64,
    "n_layer": 2,
    "n_embd": 64,
    "n_head": 2,
    "eval_blocks": 32,
    "step_seconds": 0.0,
    "num_threads": 1,
}
UNKNOWN = 0


class CharTokenizer:
    """One token per distinct character of the corpus, sorted by code point; id 0 stands for unseen characters."""

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        self.ids = {char: index + 1 for index, char in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(char, UNKNOWN) for char in text]


class Blocks(torch.utils.data.Dataset):
    """Consecutive, non-overlapping blocks of token ids; GPT-2 shifts the labels itself."""

    def __init__(self, ids: list[int], block_size: int) -> None:
        count = len(ids) // block_size
        self.blocks = torch.tensor(ids[: count * block_size], dtype=torch.long).view(count, block_size)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[index], "labels": self.blocks[index]}


class Pace(TrainerCallback):
    """Waits `seconds` after each step, so a demo run lasts long enough to watch or cancel."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(self.seconds)


def corpus() -> str:
    return resources.files("ltm.trainers.data").joinpath("sample_zh.txt").read_text(encoding="utf-8")


def build(hparams: dict, output_dir: str, callbacks: list[TrainerCallback]) -> Trainer:
    # CPU matmuls split their sums by thread, so a resumed run must use the interrupted run's thread count to
    # continue with the same losses; one thread is also the fastest for a model this small.
    torch.set_num_threads(hparams["num_threads"])
    text = corpus()
    tokenizer = CharTokenizer(text)
    ids = tokenizer.encode(text)
    split = int(len(ids) * 0.9)
    train = Blocks(ids[:split], hparams["block_size"])
    evaluation = Blocks(ids[split:], hparams["block_size"])
    evaluation.blocks = evaluation.blocks[: hparams["eval_blocks"]]

    config = GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_positions=hparams["block_size"],
        n_layer=hparams["n_layer"],
        n_embd=hparams["n_embd"],
        n_head=hparams["n_head"],
        bos_token_id=UNKNOWN,
        eos_token_id=UNKNOWN,
    )
    torch.manual_seed(hparams["seed"])
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # what transformers falls back to for GPT2LMHeadModel, after a warning
    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=hparams["max_steps"],
        learning_rate=hparams["learning_rate"],
        per_device_train_batch_size=hparams["batch_size"],
        per_device_eval_batch_size=hparams["batch_size"],
        seed=hparams["seed"],
        data_seed=hparams["seed"],
        save_strategy="steps",
        save_steps=hparams["save_steps"],
        logging_steps=hparams["logging_steps"],
        eval_strategy="no",
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )
    if hparams["step_seconds"] > 0:
        callbacks = [*callbacks, Pace(hparams["step_seconds"])]
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # LtmCallback writes each log line to the run
    return trainer


def main() -> None:
    hf_logging.disable_progress_bar()
    with ltm.core.init() as ctx:
        hparams = {name: type(default)(ctx.hparams.get(name, default)) for name, default in DEFAULTS.items()}
        callback = LtmCallback(ctx)
        trainer = build(hparams, str(ctx.checkpoint.dir), [callback])
        trainer.train(resume_from_checkpoint=resume_from_checkpoint(ctx))
        if callback.stopped_at is None:
            trainer.evaluate()


if __name__ == "__main__":
    main()
