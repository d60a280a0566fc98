"""LoRA adapters between PEFT and ROLL's MCA adapter folders (issue 5).

PEFT -> MCA -> PEFT must give back the adapter tensors bit for bit, and the reloaded PeftModel
must give the original PeftModel's logits. A folder laid out as mca-format.md 8.1 describes,
written here independently with torch.chunk views (several adapters, keys with and without
PEFT's prefix, _extra_state entries), converts to PEFT adapters that peft loads.
"""
import json
import os

import pytest
import torch
from safetensors.torch import load_file

import mca_oracle
from test_dense_roundtrip import logits, make_hf_model
from test_moe_roundtrip import make_moe_model

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def attach_adapter(model, name, targets, seed, rank=4):
    """A PEFT adapter with non-zero A and B; fused modules share lora_A, as MCA requires."""
    import peft

    config = peft.LoraConfig(r=rank, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    if isinstance(model, peft.PeftModel):
        model.add_adapter(name, config)
    else:
        model = peft.get_peft_model(model, config, adapter_name=name)
    torch.manual_seed(seed)
    with torch.no_grad():
        for module_name, module in model.named_modules():
            if hasattr(module, "lora_A") and name in module.lora_A:
                module.lora_A[name].weight.copy_(torch.randn_like(module.lora_A[name].weight))
                module.lora_B[name].weight.copy_(torch.randn_like(module.lora_B[name].weight))
        layers = model.base_model.model.model.layers
        for layer in layers:
            attn = layer.self_attn
            if "k_proj" in targets:
                shared = attn.q_proj.lora_A[name].weight
                attn.k_proj.lora_A[name].weight.copy_(shared)
                attn.v_proj.lora_A[name].weight.copy_(shared)
            if "up_proj" in targets and hasattr(layer.mlp, "gate_proj"):
                layer.mlp.up_proj.lora_A[name].weight.copy_(layer.mlp.gate_proj.lora_A[name].weight)
    return model


def adapter_tensors(path):
    return load_file(os.path.join(path, "adapter_model.safetensors"))


@pytest.mark.parametrize("flags", [
    ["--tensor_model_parallel_size", "2", "--pipeline_model_parallel_size", "2"],
    ["--tensor_model_parallel_size", "1"],
], ids=["tp2-pp2", "tp1"])
def test_peft_to_mca_to_peft(flags, tmp_path, run_convert):
    import peft
    import transformers

    base_dir, peft_dir, mca_dir, back_dir = (tmp_path / n for n in ("base", "peft", "mca", "back"))
    base = make_hf_model("llama", base_dir, 4, False)
    model = attach_adapter(base, "default", TARGETS, seed=1).eval()
    model.save_pretrained(peft_dir)
    want_logits = logits(model)

    run_convert("--checkpoint_path", base_dir, "--adapter_path", peft_dir, "--output_path", mca_dir, *flags)
    assert (mca_dir / "mca_config.json").exists()
    roll_config = json.loads((mca_dir / "default" / "adapter_config.json").read_text())
    assert roll_config["target_modules"] == ["linear_fc1", "linear_fc2", "linear_proj", "linear_qkv"]
    run_convert("--checkpoint_path", base_dir, "--adapter_path", mca_dir, "--output_path", back_dir)

    original, back = adapter_tensors(peft_dir), adapter_tensors(back_dir)
    assert back.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(back[name], tensor), name
    config = json.loads((back_dir / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and config["peft_type"] == "LORA"

    fresh = transformers.AutoModelForCausalLM.from_pretrained(base_dir)
    reloaded = peft.PeftModel.from_pretrained(fresh, back_dir).eval()
    assert torch.equal(logits(reloaded), want_logits)


def test_moe_adapter_with_expert_parallel(tmp_path, run_convert):
    import peft
    import transformers

    base_dir, peft_dir, mca_dir, back_dir = (tmp_path / n for n in ("base", "peft", "mca", "back"))
    base = make_moe_model("qwen3_moe", base_dir, 2)
    model = attach_adapter(base, "default", ["q_proj", "k_proj", "v_proj", "o_proj"], seed=2).eval()
    model.save_pretrained(peft_dir)
    flags = ["--expert_model_parallel_size", "2", "--tensor_model_parallel_size", "2"]
    run_convert("--checkpoint_path", base_dir, "--adapter_path", peft_dir, "--output_path", mca_dir, *flags)
    ranks = sorted(os.listdir(mca_dir / "default" / "iter_0000001"))
    assert ranks == ["mp_rank_00_000", "mp_rank_00_001", "mp_rank_01_000", "mp_rank_01_001"]
    run_convert("--checkpoint_path", base_dir, "--adapter_path", mca_dir, "--output_path", back_dir)
    original, back = adapter_tensors(peft_dir), adapter_tensors(back_dir)
    assert back.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(back[name], tensor), name
    fresh = transformers.AutoModelForCausalLM.from_pretrained(base_dir)
    reloaded = peft.PeftModel.from_pretrained(fresh, back_dir).eval()
    assert torch.equal(logits(reloaded), logits(model))


def roll_adapter_files(state, tp, heads, groups, prefix):
    """One adapter's rank dicts as ROLL training saves them (mca-format.md 8.2, 8.3), TP only."""
    files = {}
    layers = sorted({int(k.split(".")[4]) for k in state})
    for t in range(tp):
        model = {}
        for g in layers:
            hf = f"base_model.model.model.layers.{g}."
            out = f"{prefix}decoder.layers.{g}."
            A = lambda m: state[hf + m + ".lora_A.weight"]
            B = lambda m: state[hf + m + ".lora_B.weight"]
            qkv_b = mca_oracle.qkv_full(B("self_attn.q_proj"), B("self_attn.k_proj"), B("self_attn.v_proj"),
                                        heads, groups)
            model[out + "self_attention.linear_qkv.lora_A.weight"] = A("self_attn.q_proj")
            model[out + "self_attention.linear_qkv.lora_B.weight"] = torch.chunk(qkv_b, tp, 0)[t]
            model[out + "self_attention.linear_qkv.lora_A._extra_state"] = None
            model[out + "self_attention.linear_proj.lora_A.weight"] = torch.chunk(A("self_attn.o_proj"), tp, 1)[t]
            model[out + "self_attention.linear_proj.lora_B.weight"] = B("self_attn.o_proj")
            model[out + "mlp.linear_fc1.lora_A.weight"] = A("mlp.gate_proj")
            model[out + "mlp.linear_fc1.lora_B.weight"] = torch.cat(
                [torch.chunk(B("mlp.gate_proj"), tp, 0)[t], torch.chunk(B("mlp.up_proj"), tp, 0)[t]])
            model[out + "mlp.linear_fc2.lora_A.weight"] = torch.chunk(A("mlp.down_proj"), tp, 1)[t]
            model[out + "mlp.linear_fc2.lora_B.weight"] = B("mlp.down_proj")
        files[t] = {"model": model}
    return files


def test_roll_folder_with_several_adapters(tmp_path, run_convert):
    import peft
    import transformers

    base_dir, peft_dir, roll_dir, out_dir, mca_tmp = (
        tmp_path / n for n in ("base", "peft", "roll", "out", "mca_tmp"))
    base = make_hf_model("llama", base_dir, 2, False)
    model = attach_adapter(base, "default", TARGETS, seed=3)
    model = attach_adapter(model, "second", TARGETS, seed=4)
    model.save_pretrained(peft_dir)
    # The base MCA config of the layout ROLL trained with.
    run_convert("--checkpoint_path", base_dir, "--output_path", mca_tmp, "--tensor_model_parallel_size", "2")
    cfg = json.loads((mca_tmp / "mca_config.json").read_text())

    os.makedirs(roll_dir)
    (roll_dir / "mca_config.json").write_text((mca_tmp / "mca_config.json").read_text())
    for name, folder, prefix in [("default", peft_dir, ""), ("second", peft_dir / "second", "base_model.model.")]:
        state = load_file(folder / "adapter_model.safetensors")
        adapter = roll_dir / name
        for t, content in roll_adapter_files(state, 2, cfg["num_attention_heads"], cfg["num_query_groups"],
                                             prefix).items():
            rank = adapter / "iter_0000001" / f"mp_rank_{t:02d}"
            os.makedirs(rank)
            torch.save(content, rank / "model_optim_rng.pt")
        roll_config = json.loads((folder / "adapter_config.json").read_text())
        roll_config["target_modules"] = ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"]
        (adapter / "adapter_config.json").write_text(json.dumps(roll_config))
        (adapter / "mca_config.json").write_text((mca_tmp / "mca_config.json").read_text())
        (adapter / "latest_checkpointed_iteration.txt").write_text("1")

    run_convert("--checkpoint_path", base_dir, "--adapter_path", roll_dir, "--output_path", out_dir)
    for name, want_dir, got_dir in [("default", peft_dir, out_dir), ("second", peft_dir / "second", out_dir / "second")]:
        want, got = adapter_tensors(want_dir), adapter_tensors(got_dir)
        assert got.keys() == want.keys(), name
        for key, tensor in want.items():
            assert torch.equal(got[key], tensor), (name, key)
        fresh = transformers.AutoModelForCausalLM.from_pretrained(base_dir)
        loaded = peft.PeftModel.from_pretrained(fresh, got_dir).eval()
        model.set_adapter(name)
        assert torch.equal(logits(loaded), logits(model.eval())), name


@pytest.mark.parametrize("source", ["mca", "peft"])
def test_merged_export_matches_merge_and_unload(source, tmp_path, run_convert):
    import transformers

    base_dir, peft_dir, mca_dir, merged_dir = (tmp_path / n for n in ("base", "peft", "mca", "merged"))
    base = make_hf_model("llama", base_dir, 2, False)
    model = attach_adapter(base, "default", TARGETS, seed=5)
    model = attach_adapter(model, "other", ["q_proj", "k_proj", "v_proj"], seed=6)
    model.save_pretrained(peft_dir)
    adapter = peft_dir
    if source == "mca":
        run_convert("--checkpoint_path", base_dir, "--adapter_path", peft_dir, "--output_path", mca_dir,
                    "--tensor_model_parallel_size", "2")
        adapter = mca_dir
    run_convert("--checkpoint_path", base_dir, "--adapter_path", adapter, "--output_path", merged_dir,
                "--merge_lora", "default")

    model.set_adapter("default")
    reference = model.merge_and_unload().eval()
    merged = transformers.AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    ref_state, got_state = reference.state_dict(), merged.state_dict()
    for name, tensor in ref_state.items():
        assert torch.allclose(got_state[name], tensor, rtol=1e-5, atol=1e-6), name
    assert torch.allclose(logits(merged), logits(reference), rtol=1e-4, atol=1e-5)
