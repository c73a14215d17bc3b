import importlib.util
import json
import math
import statistics
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="需要安装 ltm[torch]")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="需要安装 ltm[torch]")

from ltm.trainers.base import InvalidConfig, TrainerConfig  # noqa: E402
from ltm.trainers.tiny_lm import (  # noqa: E402
    SAMPLE_CORPUS,
    ModelConfig,
    TinyLM,
    TinyLMTrainer,
    generate,
    load_checkpoint,
)
from tests.trainer_steps import losses, run_to_end  # noqa: E402

# Small enough for 2 CPU cores; the defaults (d_model=128, context 64, batch 16) are what users get.
SMALL = {
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 2,
    "context_length": 32,
    "batch_size": 8,
    "eval_batches": 2,
    "device": "cpu",
}


def make_trainer(dataset="sample", **hyperparameters) -> TinyLMTrainer:
    return TinyLMTrainer(
        TrainerConfig(
            model="tiny-lm", dataset=dataset, task_type=None, hyperparameters={**SMALL, **hyperparameters}, resources={}
        )
    )


def save_and_reload(files: dict[str, bytes], folder) -> dict[str, bytes]:
    """What the flow does: every checkpoint file goes to storage and comes back as bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.fixture(scope="module")
def trained():
    """One 80-step run on the bundled corpus, shared by the tests that only read it."""
    trainer = make_trainer(steps_per_epoch=80, warmup_steps=8, learning_rate=3e-3)
    before = trainer.evaluate()
    outputs, evaluations = run_to_end(trainer)
    return trainer, before, outputs, evaluations


def test_loss_falls_on_sample_corpus(trained):
    trainer, _, outputs, _ = trained
    assert [output.step for output in outputs] == list(range(1, 81))
    values = losses(outputs)
    first, last = statistics.mean(values[:10]), statistics.mean(values[-10:])
    assert first > math.log(trainer.vocab.size) - 1.0  # starts near chance
    assert last < first - 1.5, (first, last)
    assert all(math.isfinite(value) for value in values)


def test_step_metrics_and_logs(trained):
    trainer, _, outputs, _ = trained
    for output in outputs:
        assert set(output.metrics) == {"train_loss", "learning_rate", "tokens_per_second"}
        assert output.metrics["tokens_per_second"] > 0
        assert output.gpu_utilization == 0.0
    rates = [output.metrics["learning_rate"] for output in outputs]
    assert rates[0] == pytest.approx(3e-3 / 8)
    assert rates[7] == pytest.approx(3e-3)
    assert rates[-1] == pytest.approx(3e-4, rel=0.05)  # cosine down to 10% of the peak
    assert max(rates) == pytest.approx(3e-3)
    logged = [output.step for output in outputs if output.log]
    assert logged == [1, 10, 20, 30, 40, 50, 60, 70, 80]
    assert outputs[9].log.startswith("第 10/80 步（第 1 轮）- loss=")
    assert not hasattr(trainer, "step_seconds")


def test_evaluation_is_perplexity_of_held_out_loss(trained):
    trainer, before, _, evaluations = trained
    assert len(evaluations) == 1
    after = trainer.evaluate()
    assert after == evaluations[0]
    for metrics in (before, after):
        assert set(metrics) == {"eval_loss", "eval_perplexity"}
        assert metrics["eval_perplexity"] == math.exp(metrics["eval_loss"])
    assert after["eval_loss"] < before["eval_loss"] - 1.5
    assert after["eval_perplexity"] < before["eval_perplexity"] / 4


def test_batches_depend_only_on_seed_and_step():
    first = losses(run_to_end(make_trainer(steps_per_epoch=4, warmup_steps=0, seed=3))[0])
    again = losses(run_to_end(make_trainer(steps_per_epoch=4, warmup_steps=0, seed=3))[0])
    other = losses(run_to_end(make_trainer(steps_per_epoch=4, warmup_steps=0, seed=4))[0])
    assert first == again
    assert first != other


def test_global_random_state_is_left_alone():
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    trainer = make_trainer(steps_per_epoch=2, warmup_steps=0)
    run_to_end(trainer)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_restored_trainer_reproduces_uninterrupted_run_exactly(tmp_path):
    hyperparameters = {"num_epochs": 2, "steps_per_epoch": 12, "warmup_steps": 4, "seed": 7}
    outputs, evaluations = run_to_end(make_trainer(**hyperparameters))

    interrupted = make_trainer(**hyperparameters)
    for _ in range(9):
        interrupted.train_step()
    files = save_and_reload(interrupted.checkpoint_files(), tmp_path / "step-9")
    assert set(files) == {"model.safetensors", "optimizer.pt", "scheduler.pt", "state.json"}
    state = json.loads(files["state.json"])
    assert state["step"] == 9 and state["seed"] == 7 and state["trainer"] == "tiny-lm"

    restored = make_trainer(**hyperparameters)
    restored.restore_files(files)
    assert restored.step == 9
    assert restored.evaluate() == interrupted.evaluate()
    resumed_outputs, resumed_evaluations = run_to_end(restored)

    assert losses(resumed_outputs) == losses(outputs)[9:]
    assert [o.metrics["learning_rate"] for o in resumed_outputs] == [o.metrics["learning_rate"] for o in outputs][9:]
    assert resumed_evaluations == evaluations
    # The weights at the end are bit-for-bit those of the uninterrupted run.
    assert_same_weights(restored, hyperparameters)


def assert_same_weights(restored, hyperparameters) -> None:
    uninterrupted = make_trainer(**hyperparameters)
    run_to_end(uninterrupted)
    expected = safetensors_torch.load(uninterrupted.checkpoint_files()["model.safetensors"])
    actual = safetensors_torch.load(restored.checkpoint_files()["model.safetensors"])
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


def test_restore_rejects_other_checkpoints():
    trainer = make_trainer(steps_per_epoch=2, warmup_steps=0)
    trainer.train_step()
    files = trainer.checkpoint_files()
    with pytest.raises(ValueError, match="模型结构"):
        make_trainer(steps_per_epoch=2, warmup_steps=0, d_model=32).restore_files(files)
    with pytest.raises(ValueError, match="state.json"):
        make_trainer(steps_per_epoch=2, warmup_steps=0).restore_files({"model.safetensors": b""})
    simulated = {"state.json": json.dumps({"trainer": "simulated", "step": 1}).encode()}
    with pytest.raises(ValueError, match="simulated"):
        make_trainer(steps_per_epoch=2, warmup_steps=0).restore_files({**files, **simulated})


def test_checkpoint_weights_load_into_fresh_model(trained):
    trainer = trained[0]
    files = trainer.checkpoint_files()
    state = json.loads(files["state.json"])
    weights = safetensors_torch.load(files["model.safetensors"])
    model = TinyLM(ModelConfig(**state["model_config"]))
    model.load_state_dict(weights, strict=True)
    model.eval()
    tokens = torch.tensor([trainer.vocab.encode("今天的训练损失明显下降")])
    with torch.no_grad():
        assert torch.equal(model(tokens), trainer.model(tokens))
    assert state["vocab"] == trainer.vocab.chars
    assert state["num_parameters"] == model.num_parameters()


def test_load_checkpoint_folder_and_generate(trained, tmp_path):
    trainer = trained[0]
    folder = tmp_path / "step-00000080"
    save_and_reload(trainer.checkpoint_files(), folder)
    model = load_checkpoint(folder)
    text = generate(model, "今天", max_new_tokens=20, seed=1)
    assert text.startswith("今天") and len(text) == 22
    assert generate(model, "今天", max_new_tokens=20, seed=1) == text
    greedy = generate(model, "训练", max_new_tokens=10, temperature=0)
    assert len(greedy) == 12 and "\ufffd" not in greedy
    # Characters the corpus never contained are tolerated in the prompt.
    assert generate(model, "🙂", max_new_tokens=3).startswith("🙂")


def test_hyperparameter_declarations_match_defaults():
    declared = {item.name: item for item in TinyLMTrainer.hyperparameters}
    assert list(declared) == [
        "learning_rate",
        "batch_size",
        "context_length",
        "n_layers",
        "n_heads",
        "d_model",
        "num_epochs",
        "steps_per_epoch",
        "warmup_steps",
        "seed",
        "eval_batches",
        "device",
    ]
    assert all(item.description and item.type in {"int", "float", "str"} for item in declared.values())
    trainer = TinyLMTrainer(
        TrainerConfig(model="tiny-lm", dataset="中文示例语料", task_type=None, hyperparameters={}, resources={})
    )
    used = trainer.state()["hyperparameters"]
    assert used == {name: item.default for name, item in declared.items() if name != "device"}
    assert declared["device"].default == "auto"
    assert trainer.total_steps == 100 and trainer.steps_per_epoch == 100
    assert TinyLMTrainer.name == "tiny-lm" and TinyLMTrainer.description


def test_declarations_are_readable_without_importing_torch():
    """The API process lists tiny-lm and its hyperparameters without torch (an optional extra)."""
    code = (
        "import sys, ltm.trainers.tiny_lm as module\n"
        "trainer = module.TinyLMTrainer\n"
        "print(trainer.name, len(trainer.hyperparameters), trainer.requires)\n"
        "heavy = ('torch', 'numpy', 'safetensors', 'ltm.trainers.tiny_lm_model')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    described, heavy = done.stdout.strip().splitlines()
    assert described == "tiny-lm 12 ('torch', 'safetensors')"
    assert heavy == "[]"


def test_declared_ranges_are_the_validated_ones():
    declared = {item.name: item for item in TinyLMTrainer.hyperparameters}
    assert (declared["learning_rate"].minimum, declared["learning_rate"].maximum) == (0.0, 1.0)
    assert declared["learning_rate"].minimum_exclusive
    assert (declared["context_length"].minimum, declared["context_length"].maximum) == (2, 4096)
    assert (declared["warmup_steps"].minimum, declared["warmup_steps"].maximum) == (0, None)
    assert (declared["seed"].minimum, declared["seed"].maximum) == (None, None)
    with pytest.raises(InvalidConfig, match="超参数 learning_rate 必须大于 0.0 且 不超过 1.0，当前值为 0"):
        make_trainer(learning_rate=0)
    with pytest.raises(InvalidConfig, match="超参数 d_model 必须不小于 8 且 不超过 8192，当前值为 4"):
        make_trainer(d_model=4, n_heads=1)


def test_model_names_are_still_importable_from_the_trainer_module():
    import ltm.trainers.tiny_lm as module
    import ltm.trainers.tiny_lm_model as model_module

    for name in ("CharVocab", "ModelConfig", "TinyLM", "generate", "load_checkpoint", "MODEL_FILE"):
        assert getattr(module, name) is getattr(model_module, name)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    ("hyperparameters", "key"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"context_length": 1}, "context_length"),
        ({"n_layers": 0}, "n_layers"),
        ({"d_model": 64, "n_heads": 3}, "d_model"),
        ({"num_epochs": 0}, "num_epochs"),
        ({"steps_per_epoch": -1}, "steps_per_epoch"),
        ({"warmup_steps": 500, "steps_per_epoch": 10}, "warmup_steps"),
        ({"seed": "abc"}, "seed"),
        ({"eval_batches": 0}, "eval_batches"),
        ({"device": "tpu"}, "device"),
        ({"device": 3}, "device"),
    ],
)
def test_invalid_hyperparameters_name_the_key(hyperparameters, key):
    with pytest.raises(InvalidConfig, match=key):
        make_trainer(**hyperparameters)


def test_missing_or_bad_dataset_names_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("LTM_DATASET_ROOTS", str(tmp_path))
    missing = tmp_path / "没有这个文件.txt"
    with pytest.raises(InvalidConfig, match="无法读取数据集") as error:
        make_trainer(dataset=str(missing))
    assert str(missing) in str(error.value)

    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(InvalidConfig, match="UTF-8") as error:
        make_trainer(dataset=str(binary))
    assert str(binary) in str(error.value)

    short = tmp_path / "short.txt"
    short.write_text("太短的语料。" * 10, encoding="utf-8")
    with pytest.raises(InvalidConfig, match="context_length") as error:
        make_trainer(dataset=str(short), context_length=32)
    assert str(short) in str(error.value)

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(InvalidConfig, match="太短"):
        make_trainer(dataset=str(empty))

    with pytest.raises(InvalidConfig, match="数据集"):
        make_trainer(dataset="")


def test_local_text_file_and_file_url_work_as_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("LTM_DATASET_ROOTS", str(tmp_path))
    corpus = tmp_path / "my corpus.txt"
    lines = [f"第{i}行：春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。" for i in range(60)]
    corpus.write_text("\n".join(lines), encoding="utf-8")
    for dataset in (str(corpus), f"file://{corpus}"):
        trainer = make_trainer(dataset=dataset, steps_per_epoch=3, warmup_steps=1)
        assert set(trainer.vocab.chars) == set(corpus.read_text(encoding="utf-8"))
        outputs, evaluations = run_to_end(trainer)
        assert len(outputs) == 3 and len(evaluations) == 1


def test_a_dataset_outside_the_roots_is_never_opened(tmp_path, monkeypatch):
    secret = tmp_path / "secret" / "credentials"
    secret.parent.mkdir()
    secret.write_text("AWS_SECRET=只有我知道" * 100, encoding="utf-8")
    monkeypatch.setenv("LTM_DATASET_ROOTS", str(tmp_path / "datasets"))
    for dataset in (
        str(secret),
        f"file://{secret}",
        "/proc/self/environ",
        f"{tmp_path}/datasets/../secret/credentials",
        f"{tmp_path}/datasets::{secret}",
        "ftp://example.com:21/corpus.txt",
        "webhdfs://10.0.0.1/x",
    ):
        with pytest.raises(InvalidConfig, match="不能读取数据集") as error:
            make_trainer(dataset=dataset)
        assert "只有我知道" not in str(error.value) and "No such file" not in str(error.value)
    with pytest.raises(InvalidConfig, match="不认识数据集名称"):
        make_trainer(dataset="credentials")


def test_sample_corpus_is_bundled_and_reproducible_from_its_generator():
    text = SAMPLE_CORPUS.read_text(encoding="utf-8")
    assert 250_000 < len(text.encode()) < 400_000
    assert "训练" in text and "天气" in text
    spec = importlib.util.spec_from_file_location(
        "make_sample_corpus", SAMPLE_CORPUS.with_name("make_sample_corpus.py")
    )
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.generate() == text


def test_training_past_the_end_is_an_error():
    trainer = make_trainer(steps_per_epoch=1, warmup_steps=0)
    trainer.train_step()
    with pytest.raises(RuntimeError):
        trainer.train_step()


def test_diverged_loss_fails_the_step_with_a_hint():
    trainer = make_trainer(steps_per_epoch=2, warmup_steps=0)
    with torch.no_grad():
        trainer.model.head.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="learning_rate"):
        trainer.train_step()
