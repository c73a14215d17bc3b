import json
import statistics

import pytest

from ltm.trainers import DEFAULT_TRAINER, InvalidConfig, TrainerConfig, get_trainer
from ltm.trainers.simulated import SimulatedTrainer
from tests.trainer_steps import losses, run_to_end


def make_trainer(task_type="文本摘要", resources=None, **hyperparameters) -> SimulatedTrainer:
    config = TrainerConfig(
        model="Qwen2-7B",
        dataset="news-summary",
        task_type=task_type,
        hyperparameters=hyperparameters,
        resources={"gpu_type": "A100", "gpu_count": 4} if resources is None else resources,
    )
    return SimulatedTrainer(config)


def test_default_trainer_is_registered():
    assert DEFAULT_TRAINER == "simulated"
    assert get_trainer("simulated") is SimulatedTrainer


def test_unknown_trainer_lists_available_names():
    with pytest.raises(InvalidConfig, match="simulated") as error:
        get_trainer("deepspeed")
    assert "deepspeed" in str(error.value)


def test_restored_trainer_reproduces_uninterrupted_run():
    hyperparameters = {"num_epochs": 3, "steps_per_epoch": 20, "warmup_steps": 5, "learning_rate": 2e-4}
    uninterrupted = make_trainer(**hyperparameters)
    outputs, evaluations = run_to_end(uninterrupted)

    interrupted = make_trainer(**hyperparameters)
    for _ in range(27):
        interrupted.train_step()
    saved_state = json.loads(json.dumps(interrupted.state_dict()))

    restored = make_trainer(**hyperparameters)
    restored.load_state_dict(saved_state)
    assert restored.step == 27
    assert restored.evaluate() == interrupted.evaluate()
    resumed_outputs, resumed_evaluations = run_to_end(restored)

    assert resumed_outputs == outputs[27:]
    assert resumed_evaluations == evaluations[1:]
    assert restored.state_dict() == uninterrupted.state_dict()
    assert any(output.log for output in resumed_outputs)


def test_state_dict_is_json_and_carries_weights_summary():
    trainer = make_trainer(num_epochs=1, steps_per_epoch=5)
    for _ in range(5):
        trainer.train_step()
    state = json.loads(json.dumps(trainer.state_dict(), allow_nan=False))
    assert state["step"] == 5
    assert state["weights"]["num_parameters"] == 7_000_000_000
    assert len(state["weights"]["layers"]) >= 1
    assert state["weights"]["checksum"]


def test_train_step_after_last_step_raises():
    trainer = make_trainer(num_epochs=1, steps_per_epoch=3)
    for _ in range(3):
        trainer.train_step()
    with pytest.raises(RuntimeError):
        trainer.train_step()


def test_loss_decreases_over_training():
    outputs, evaluations = run_to_end(make_trainer(learning_rate=1e-4))
    train_losses = losses(outputs)
    assert statistics.mean(train_losses[-30:]) < 0.7 * statistics.mean(train_losses[:30])
    assert evaluations[-1]["eval_loss"] < evaluations[0]["eval_loss"] * 1.05
    assert evaluations[-1]["eval_rouge_l"] > 20


def test_higher_learning_rate_in_range_converges_faster():
    slow, _ = run_to_end(make_trainer(learning_rate=1e-5, num_epochs=1))
    fast, _ = run_to_end(make_trainer(learning_rate=2e-4, num_epochs=1))
    assert statistics.mean(losses(fast)[-20:]) < statistics.mean(losses(slow)[-20:]) - 0.3


def test_too_high_learning_rate_is_unstable():
    stable, _ = run_to_end(make_trainer(learning_rate=1e-4, num_epochs=1))
    unstable, _ = run_to_end(make_trainer(learning_rate=0.5, num_epochs=1))
    stable_losses, unstable_losses = losses(stable), losses(unstable)
    assert statistics.mean(unstable_losses[-20:]) > statistics.mean(unstable_losses[:20])
    assert statistics.pstdev(unstable_losses) > 5 * statistics.pstdev(stable_losses)


def test_larger_batch_reduces_noise():
    def late_step_jitter(batch_size):
        outputs, _ = run_to_end(make_trainer(batch_size=batch_size, learning_rate=2e-4, num_epochs=2))
        late = losses(outputs)[-100:]
        return statistics.pstdev(b - a for a, b in zip(late, late[1:]))

    assert late_step_jitter(256) < 0.4 * late_step_jitter(4)


def test_learning_rate_warms_up_then_decays():
    trainer = make_trainer(learning_rate=1e-4, warmup_steps=10, num_epochs=1, steps_per_epoch=100)
    rates = [trainer.train_step().metrics["learning_rate"] for _ in range(100)]
    assert rates[0] == pytest.approx(1e-5)
    assert rates[9] == pytest.approx(1e-4)
    assert all(later <= earlier for earlier, later in zip(rates[9:], rates[10:]))
    assert rates[-1] < 1e-6


@pytest.mark.parametrize(
    ("task_type", "metric", "upper_bound"),
    [
        ("文本摘要", "eval_rouge_l", 100),
        ("问答", "eval_exact_match", 100),
        ("翻译", "eval_bleu", 100),
        ("情感分类", "eval_accuracy", 1),
        ("classification", "eval_accuracy", 1),
        (None, "eval_perplexity", float("inf")),
    ],
)
def test_evaluation_metric_fits_task_type(task_type, metric, upper_bound):
    trainer = make_trainer(task_type=task_type, num_epochs=1, steps_per_epoch=10)
    run_to_end(trainer)
    metrics = trainer.evaluate()
    assert set(metrics) == {"eval_loss", metric}
    assert 0 <= metrics[metric] <= upper_bound


def test_gpu_utilization_depends_on_resources():
    no_gpu = make_trainer(resources={"gpu_count": 0}, num_epochs=1, steps_per_epoch=5)
    assert all(no_gpu.train_step().gpu_utilization == 0.0 for _ in range(5))

    def mean_utilization(gpu_count, batch_size):
        trainer = make_trainer(
            resources={"gpu_type": "H100", "gpu_count": gpu_count}, batch_size=batch_size, steps_per_epoch=10
        )
        values = [trainer.train_step().gpu_utilization for _ in range(10)]
        assert all(0 < value <= 1 for value in values)
        return statistics.mean(values)

    assert mean_utilization(8, 8) < mean_utilization(1, 64)


def test_more_gpus_give_more_tokens_per_second():
    def tokens_per_second(gpu_count):
        trainer = make_trainer(resources={"gpu_type": "A100", "gpu_count": gpu_count}, batch_size=256)
        return statistics.mean(trainer.train_step().metrics["tokens_per_second"] for _ in range(10))

    assert tokens_per_second(8) > 3 * tokens_per_second(1)


def test_step_seconds_is_exposed_for_pacing():
    assert make_trainer(step_seconds=0.5).step_seconds == 0.5
    assert make_trainer().step_seconds is None  # the declared default: the flow paces it by LTM_STEP_SECONDS


def test_unknown_hyperparameters_are_ignored():
    assert make_trainer(gradient_checkpointing=True, lora_rank=8).total_steps == 300


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("learning_rate", 0),
        ("learning_rate", 2.0),
        ("learning_rate", "fast"),
        ("batch_size", 0),
        ("batch_size", 1.5),
        ("batch_size", True),
        ("num_epochs", 1001),
        ("steps_per_epoch", 0),
        ("seed", "abc"),
        ("warmup_steps", -1),
        ("warmup_steps", 10_000),
        ("step_seconds", 61),
    ],
)
def test_invalid_hyperparameter_is_named_in_error(key, value):
    with pytest.raises(InvalidConfig, match=key):
        make_trainer(**{key: value})


def test_invalid_gpu_count_is_named_in_error():
    with pytest.raises(InvalidConfig, match="gpu_count"):
        make_trainer(resources={"gpu_type": "A100", "gpu_count": -1})


def test_checkpoint_from_other_trainer_is_rejected():
    with pytest.raises(ValueError):
        make_trainer().load_state_dict({"trainer": "other", "step": 1})
