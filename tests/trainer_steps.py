"""Driving a trainer the way the training flow does, for the trainer tests."""


def run_to_end(trainer) -> tuple[list, list]:
    """Every step's output, and an evaluation at the end of each epoch."""
    outputs, evaluations = [], []
    while trainer.step < trainer.total_steps:
        outputs.append(trainer.train_step())
        if trainer.step % trainer.steps_per_epoch == 0:
            evaluations.append(trainer.evaluate())
    return outputs, evaluations


def losses(outputs) -> list[float]:
    return [output.metrics["train_loss"] for output in outputs]
