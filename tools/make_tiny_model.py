#!/usr/bin/env python3
"""Builds the tiny Llama checkpoint shipped in tests/data/tiny-llama/.

This script is the documented origin of that folder. It needs no network: the tokenizer is a small
byte-level BPE trained here on the built-in text below, and the weights come from a seeded random
initialisation. Running it twice gives byte-identical weights (checked with --check).

    python3 tools/make_tiny_model.py                # (re)write tests/data/tiny-llama
    python3 tools/make_tiny_model.py --check        # write to a temp dir twice and compare bytes
"""

import argparse
import hashlib
import json
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import (  # noqa: E402
    Tokenizer, decoders, models, pre_tokenizers, processors, trainers)

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "tests" / "data" / "tiny-llama"
SEED = 1234
VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
MAX_FOLDER_BYTES = 1 << 20

# Written for this project; any English prose would do. It only has to hold enough distinct
# character pairs for the BPE trainer to reach VOCAB_SIZE entries.
TRAINING_TEXT = """\
A checkpoint is a set of named tensors together with the configuration that says how they fit.
Converting one between formats means reading every tensor once, slicing or joining it where the
target layout asks for that, and writing it again without changing a single bit of its value.
Tensor parallelism splits the attention heads and the hidden units of the feed-forward network
across ranks; pipeline parallelism hands whole layers to successive stages; expert parallelism
gives each rank a slice of the experts of a mixture-of-experts block.
The quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly.
Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs.
Numbers also appear in model files: 0 1 2 3 4 5 6 7 8 9 10 16 32 64 128 256 512 1024 4096.
Query, key and value projections are interleaved per group when they are fused into one matrix;
the gate and up projections of a gated linear unit are stacked per rank before the down projection.
Small models make fast tests: four layers, four heads, two key-value heads, and a short vocabulary.
Every converter should be able to go there and back again and find the same bytes at the end.
"""


def train_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Trains a byte-level BPE of VOCAB_SIZE entries on TRAINING_TEXT."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repetition gives pair counts enough spread for the trainer to find all merges it needs.
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines() * 4, trainer=trainer)
    # Like Llama's own tokenizer: every encoded sequence starts with <s>.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B",
        special_tokens=[("<s>", tokenizer.token_to_id("<s>"))])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=256,
    )


def build_model(tokenizer: transformers.PreTrainedTokenizerFast) -> transformers.LlamaForCausalLM:
    """A seeded tiny Llama with GQA and untied embeddings, cast to bfloat16."""
    config = transformers.LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Initialise in float32 and cast once, so the values do not depend on bf16 init kernels.
    torch.manual_seed(SEED)
    model = transformers.LlamaForCausalLM(config)
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=16,
    )
    return model


def write(output: pathlib.Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    if len(tokenizer) != VOCAB_SIZE:
        sys.exit(f"tokenizer has {len(tokenizer)} entries, expected {VOCAB_SIZE}")
    model = build_model(tokenizer)
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    name_portable_tokenizer_class(output / "tokenizer_config.json")
    size = sum(f.stat().st_size for f in output.iterdir() if f.is_file())
    if size >= MAX_FOLDER_BYTES:
        sys.exit(f"{output} holds {size} bytes, the limit is {MAX_FOLDER_BYTES}")
    print(f"wrote {output} ({size} bytes)")


def name_portable_tokenizer_class(path: pathlib.Path) -> None:
    """Names a tokenizer class that transformers 4.x knows too (5.x maps it to the same one)."""
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def digests(folder: pathlib.Path) -> dict:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.iterdir()) if f.is_file()}


def check_determinism() -> int:
    """Writes the model twice into fresh folders and compares every file byte for byte."""
    with tempfile.TemporaryDirectory() as tmp:
        first, second = pathlib.Path(tmp, "a"), pathlib.Path(tmp, "b")
        write(first)
        write(second)
        a, b = digests(first), digests(second)
    differing = sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))
    if differing:
        print(f"not deterministic: {differing}", file=sys.stderr)
        return 1
    print(f"deterministic: {len(a)} files identical, model.safetensors sha256 "
          f"{a['model.safetensors']}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="build twice in a temp dir and verify identical bytes")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    if args.check:
        return check_determinism()
    write(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
