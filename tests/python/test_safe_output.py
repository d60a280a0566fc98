"""Safe output, end to end: a run either puts a complete output in place or leaves no trace.

Failures in planning and in execution, --overwrite (the old output goes only on success), SIGINT
and SIGTERM in the middle of writing, a full disk (a 2 MiB tmpfs), --dry-run, output paths with a
trailing separator or naming an existing empty folder, and the progress line (silent when stderr
is not a terminal; drawn and erased on a pseudo-terminal).
"""

import glob
import os
import pty
import re
import signal
import subprocess
import time

import pytest
import torch
import transformers
from safetensors.torch import save_file

import models
from test_cli_errors import error_line, expect_failure, leftovers, tree_digest


def rank_dirs(mca_dir):
    return sorted(p.parent.name for p in (mca_dir / "iter_0000001").glob("*/model_optim_rng.pt"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return models.make_tiny_model("llama", tmp_path_factory.mktemp("m") / "llama")


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """About 4 MiB of float32 weights: more than the 2 MiB tmpfs holds."""
    return models.make_tiny_model("llama", tmp_path_factory.mktemp("m") / "wide", hidden_size=128,
                                  intermediate_size=512)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """About 150 MiB of float32 weights, random, written without initialising a model."""
    path = tmp_path_factory.mktemp("m") / "big"
    config = models.make_tiny_config("llama", hidden_size=512, intermediate_size=2048,
                                     num_attention_heads=8, num_key_value_heads=4,
                                     num_hidden_layers=8, vocab_size=8192)
    path.mkdir()
    config.save_pretrained(path)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in
                  transformers.AutoModelForCausalLM.from_config(config).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.rand(shape, generator=generator) for k, shape in shapes.items()}
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    return path


def skew_replica(mca_dir):
    """Makes rank 1's copy of a replicated layernorm differ from rank 0's."""
    path = mca_dir / "iter_0000001" / "mp_rank_01" / "model_optim_rng.pt"
    state = torch.load(path, weights_only=True)
    state["model"]["decoder.layers.0.self_attention.linear_qkv.layer_norm_weight"][0] += 1
    torch.save(state, path)


# ---- failures leave nothing ------------------------------------------------------------------

def test_execution_failure_into_nested_new_folder(llama, tmp_path, run_convert):
    # The replica check fails after the temporary folder exists: it and the parent folders the
    # run made must go, the inputs must not change.
    mca = tmp_path / "mca"
    run_convert("--checkpoint_path", llama, "--output_path", mca, "--tensor_model_parallel_size", 2)
    skew_replica(mca)
    message = expect_failure(run_convert, 1, [mca, llama], tmp_path / "a" / "b" / "hf",
                             "--checkpoint_path", mca)
    assert "replicas differ" in message
    assert not (tmp_path / "a").exists()


def test_overwrite_replaces_only_on_success(llama, tmp_path, run_convert):
    mca = tmp_path / "mca"
    run_convert("--checkpoint_path", llama, "--output_path", mca, "--tensor_model_parallel_size", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous output")
    old = tree_digest(out)

    skew_replica(mca)
    result = run_convert("--checkpoint_path", mca, "--output_path", out, "--overwrite",
                         expect_rc=1)
    assert "replicas differ" in error_line(result)
    assert tree_digest(out) == old
    assert leftovers(tmp_path) == []

    good = tmp_path / "good"
    run_convert("--checkpoint_path", llama, "--output_path", good)
    run_convert("--checkpoint_path", llama, "--output_path", out, "--overwrite")
    assert not (out / "old.txt").exists()
    assert tree_digest(out) == tree_digest(good)
    assert leftovers(tmp_path) == []


def test_trailing_separator_and_existing_empty_folder(llama, tmp_path, run_convert,
                                                      mca_convert):
    reference = tmp_path / "reference"
    run_convert("--checkpoint_path", llama, "--output_path", reference)
    expected = tree_digest(reference)

    run_convert("--checkpoint_path", llama, "--output_path", f"{tmp_path}/slash/")
    assert tree_digest(tmp_path / "slash") == expected

    run_convert("--checkpoint_path", llama, "--output_path", f"{tmp_path}/slash/", "--overwrite")
    assert tree_digest(tmp_path / "slash") == expected

    # An existing empty folder (here the working directory, ".") is filled in place.
    here = tmp_path / "here"
    here.mkdir()
    inode = here.stat().st_ino
    result = subprocess.run([str(mca_convert), "--checkpoint_path",
                             str(llama), "--output_path", "."], cwd=here, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert here.stat().st_ino == inode
    assert tree_digest(here) == expected
    assert leftovers(tmp_path) == []


def test_failure_into_existing_empty_folder_leaves_it_empty(llama, tmp_path, run_convert):
    mca = tmp_path / "mca"
    run_convert("--checkpoint_path", llama, "--output_path", mca, "--tensor_model_parallel_size", 2)
    skew_replica(mca)
    out = tmp_path / "out"
    out.mkdir()
    result = run_convert("--checkpoint_path", mca, "--output_path", out, expect_rc=1)
    assert "replicas differ" in error_line(result)
    assert list(out.iterdir()) == []
    assert leftovers(tmp_path) == []


# ---- interrupts ------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_while_writing_leaves_nothing(big, tmp_path, mca_convert, signum):
    before = tree_digest(big)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [str(mca_convert), "--checkpoint_path", str(big), "--output_path", str(out), "--threads",
         "1", "--bf16", "--tensor_model_parallel_size", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The rank folders appear inside the temporary folder once writing has begun.
    deadline = time.monotonic() + 60
    while not glob.glob(str(tmp_path / ".out.mcaconv-tmp-*" / "iter_0000001")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.001)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert stdout == ""
    assert stderr == ("mca-convert: error: interrupted; removed the partial output, nothing was "
                      f"written to {out}\n")
    assert not out.exists()
    assert leftovers(tmp_path) == []
    assert tree_digest(big) == before


# ---- full disk -------------------------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize("where", ["new", "nested", "mount_point"])
def test_full_disk(wide, small_tmpfs, run_convert, where):
    before = tree_digest(wide)
    out = {"new": small_tmpfs / "out", "nested": small_tmpfs / "a" / "out",
           "mount_point": small_tmpfs}[where]
    result = run_convert("--checkpoint_path", wide, "--output_path", out, expect_rc=1)
    message = error_line(result)
    weight_file = f"{out}/iter_0000001/mp_rank_00/model_optim_rng.pt"
    assert message.startswith(f"{weight_file}: not enough disk space for ")
    assert message.endswith(": No space left on device")
    assert list(small_tmpfs.iterdir()) == []
    assert tree_digest(wide) == before


# ---- dry run ---------------------------------------------------------------------------------

def test_dry_run_prints_the_plan_and_writes_nothing(llama, tmp_path, run_convert):
    out = tmp_path / "out"
    flags = ["--tensor_model_parallel_size", "2", "--pipeline_model_parallel_size", "2"]
    result = run_convert("--checkpoint_path", llama, "--output_path", out, "--dry-run", *flags)
    assert result.stderr == ""
    assert not out.exists() and leftovers(tmp_path) == []

    # The real run must match what the plan announced: files, tensors, sizes, tensor bytes.
    run_convert("--checkpoint_path", llama, "--output_path", out, *flags)
    plan = result.stdout
    total_tensors = total_bytes = 0
    for rank in rank_dirs(out):
        path = out / "iter_0000001" / rank / "model_optim_rng.pt"
        state = torch.load(path, weights_only=True)["model"]
        total_tensors += len(state)
        total_bytes += sum(t.numel() * t.element_size() for t in state.values())
        line = f"iter_0000001/{rank}/model_optim_rng.pt: {len(state)} tensors, "
        assert line + f"{path.stat().st_size} B" in plan, plan
    assert len(rank_dirs(out)) == 4
    assert f"4 weight files, {total_tensors} tensors, {total_bytes} B of tensor data" in plan
    assert "peak private memory" in plan
    mca_config = (out / "mca_config.json").stat().st_size
    assert f"mca_config.json: {mca_config} B" in plan


# ---- progress line ---------------------------------------------------------------------------

def test_no_progress_output_when_stderr_is_not_a_terminal(big, tmp_path, run_convert):
    # The same run as on the terminal below, where it draws the status line.
    flags = ["--threads", 1, "--tensor_model_parallel_size", 2]
    result = run_convert("--checkpoint_path", big, "--output_path", tmp_path / "a", *flags)
    assert result.stdout == ""
    assert re.fullmatch(r"wrote \S+ \(2 weight files, [0-9.]+ MiB\) in [0-9.e-]+ s\n",
                        result.stderr), repr(result.stderr)
    result = run_convert("--checkpoint_path", big, "--output_path", tmp_path / "b", "-q", *flags)
    assert result.stdout == "" and result.stderr == ""


def run_on_terminal(command):
    """Runs `command` with stderr on a pseudo-terminal; returns (rc, bytes written, seconds)."""
    leader, follower = pty.openpty()
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return process.wait(timeout=60), output, time.monotonic() - started


def test_progress_line_on_a_terminal(big, tmp_path, mca_convert):
    command = [str(mca_convert), "--checkpoint_path", str(big), "--threads", "1",
               "--tensor_model_parallel_size", "2"]
    rc, output, seconds = run_on_terminal(command + ["--output_path", str(tmp_path / "a")])
    assert rc == 0
    text = output.decode()
    draws = re.findall(r"\r\x1b\[Kconverting: ([0-9.]+ \w+) / ([0-9.]+ \w+) \((\d+)%\)"
                       r"(, [0-9.]+ \w+/s, ETA \d+:\d\d)?", text)
    if seconds > 0.8:  # the first draw comes 200 ms after the first write
        assert draws, repr(text)
    assert len(draws) <= 5 * seconds + 1, repr(text)
    assert all(draw[1] == draws[0][1] for draw in draws)
    # Erased before the summary line: nothing of the status line survives on screen.
    erase = r"\r\x1b\[K" if draws else ""
    summary = r"wrote \S+ \(2 weight files, [0-9.]+ MiB\) in [0-9.e-]+ s\r\n"
    assert re.fullmatch(r"(\r\x1b\[Kconverting: [^\r]*)*" + erase + summary, text), repr(text)

    rc, output, _ = run_on_terminal(command + ["--output_path", str(tmp_path / "b"), "-q"])
    assert rc == 0 and output == b""
