import hashlib
import json
import os

import fsspec
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ltm import checksums
from ltm.artifact_paths import locate
from ltm.flows.artifact_io import ArtifactWriter, CorruptCheckpoint, TensorBoardWriter, read_checkpoint
from ltm.trainers import TrainerConfig
from ltm.trainers.simulated import SimulatedTrainer


def test_checkpoint_round_trip_with_real_size(tmp_path):
    trainer = SimulatedTrainer(TrainerConfig("Qwen2-7B", "news", "文本摘要", {"steps_per_epoch": 10}, {}))
    for _ in range(10):
        trainer.train_step()
    files = trainer.checkpoint_files()

    written = ArtifactWriter(str(tmp_path), "proj-1", "run-1").write_checkpoint("step-10", files)

    assert written.path == str(tmp_path / "proj-1" / "run-1" / "step-10.ckpt")
    on_disk = [os.path.join(written.path, name) for name in os.listdir(written.path)]
    assert written.size_bytes == sum(os.path.getsize(path) for path in on_disk) > 0
    assert read_checkpoint(locate(written.path), written.checksums) == files
    assert sorted(os.listdir(tmp_path / "proj-1" / "run-1")) == ["step-10.ckpt"]

    restored = SimulatedTrainer(TrainerConfig("Qwen2-7B", "news", "文本摘要", {"steps_per_epoch": 10}, {}))
    restored.restore_files(read_checkpoint(locate(written.path), written.checksums))
    assert restored.state_dict() == trainer.state_dict()


def test_a_checkpoint_is_hashed_as_it_is_written_and_a_flipped_byte_is_refused(tmp_path):
    files = {"state.json": b'{"step": 3}', "weights.bin": bytes(range(256))}

    written = ArtifactWriter(str(tmp_path), "p", "r").write_checkpoint("step-3", files)

    expected = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert written.checksums == expected
    manifest = json.loads((tmp_path / "p" / "r" / "step-3.ckpt" / checksums.MANIFEST).read_text())
    assert manifest == {"algorithm": "sha256", "files": expected}
    folder = tmp_path / "p" / "r" / "step-3.ckpt"
    assert written.size_bytes == sum(f.stat().st_size for f in folder.iterdir())  # the manifest included: bytes on disk
    assert read_checkpoint(locate(written.path), written.checksums) == files

    weights = tmp_path / "p" / "r" / "step-3.ckpt" / "weights.bin"
    flipped = bytearray(weights.read_bytes())
    flipped[100] ^= 0x01
    weights.write_bytes(bytes(flipped))
    with pytest.raises(CorruptCheckpoint, match="weights.bin 的 SHA-256 与写入时不同"):
        read_checkpoint(locate(written.path), written.checksums)
    assert read_checkpoint(locate(written.path), None)["weights.bin"] == bytes(flipped)  # no record, no check

    weights.unlink()
    with pytest.raises(CorruptCheckpoint, match="文件 weights.bin 不见了"):
        read_checkpoint(locate(written.path), written.checksums)


def test_checkpoint_overwrite_replaces_content(tmp_path):
    writer = ArtifactWriter(f"file://{tmp_path}", "p", "r")
    writer.write_checkpoint("latest", {"a.bin": b"1", "old.bin": b"x"})
    written = writer.write_checkpoint("latest.ckpt", {"a.bin": "第二次".encode()})
    assert read_checkpoint(locate(written.path), written.checksums) == {"a.bin": "第二次".encode()}


def test_non_local_root_returns_url():
    writer = ArtifactWriter("memory://artifact-io-test", "p", "r")
    try:
        written = writer.write_checkpoint("c", {"state.json": b'{"step": 3}'})
        assert written.path.startswith("memory://")
        assert written.path.endswith("/artifact-io-test/p/r/c.ckpt")
        assert written.size_bytes == 11 + len(checksums.manifest_bytes(written.checksums))
        assert read_checkpoint(locate(written.path), written.checksums) == {"state.json": b'{"step": 3}'}
        assert writer.tensorboard_dir.endswith("/artifact-io-test/p/r/tensorboard")
    finally:
        fsspec.filesystem("memory").rm("/artifact-io-test", recursive=True)


def test_unsafe_ids_are_rejected(tmp_path):
    with pytest.raises(ValueError):
        ArtifactWriter(str(tmp_path), "..", "run")
    with pytest.raises(ValueError):
        ArtifactWriter(str(tmp_path), "p", "r").write_checkpoint("../escape", {})
    with pytest.raises(ValueError):
        ArtifactWriter(str(tmp_path), "p", "r").write_checkpoint("c", {"../x": b""})


def test_config_and_evaluation_json(tmp_path):
    writer = ArtifactWriter(str(tmp_path), "p", "r")
    config = {"model": "Qwen2-7B", "task_type": "文本摘要", "hyperparameters": {"learning_rate": 3e-5}}

    written_config = writer.write_config(config)
    written_evaluation = writer.write_evaluation(2, 200, {"eval_loss": 1.5, "eval_rouge_l": 38.2})

    assert written_config.path.endswith("config.json")
    with open(written_config.path, encoding="utf-8") as handle:
        assert json.load(handle) == config
    assert written_evaluation.path.endswith("eval_epoch2.json")
    with open(written_evaluation.path, encoding="utf-8") as handle:
        assert json.load(handle) == {"epoch": 2, "step": 200, "metrics": {"eval_loss": 1.5, "eval_rouge_l": 38.2}}
    assert written_evaluation.size_bytes == os.path.getsize(written_evaluation.path)


def test_tensorboard_scalars_are_readable(tmp_path):
    writer = ArtifactWriter(str(tmp_path), "p", "r")
    logged = {step: {"train_loss": 3.0 / step, "learning_rate": 1e-4 * step} for step in range(1, 6)}

    with TensorBoardWriter(writer.tensorboard_dir) as tensorboard:
        for step, metrics in logged.items():
            tensorboard.add_scalars(step, metrics, wall_time=1_700_000_000.0 + step)
        tensorboard.flush()
        assert tensorboard.size_bytes() > 0

    accumulator = EventAccumulator(writer.tensorboard_dir)
    accumulator.Reload()
    assert set(accumulator.Tags()["scalars"]) == {"train_loss", "learning_rate"}
    train_loss_events = accumulator.Scalars("train_loss")
    assert [event.step for event in train_loss_events] == [1, 2, 3, 4, 5]
    assert [event.value for event in train_loss_events] == pytest.approx([3.0 / step for step in range(1, 6)])
    assert train_loss_events[0].wall_time == 1_700_000_001.0
    assert accumulator.Scalars("learning_rate")[-1].value == pytest.approx(5e-4)


def test_tensorboard_requires_local_directory():
    with pytest.raises(ValueError, match="本地"):
        TensorBoardWriter("memory://somewhere/tensorboard")
