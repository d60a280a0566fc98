#!/usr/bin/env python3
"""Generates the configuration-layer fixtures under tests/data/configs/ (seeded, reproducible).

Outputs:
  python_json_cases.json   values and their exact `json.dumps(v, indent=2, sort_keys=True)` text.
  models/<name>/config.json   tiny HF configs written by transformers' save_pretrained (plus a few
                              hand-trimmed "sparse" ones that omit keys, to exercise class defaults).
  cases.json                the HF->MCA cases: model, CLI arguments, expected file.
  mca/<case>.json           mca_config.json exactly as the reference writes it: ROLL's template
                            convert_hf_to_mca_config + McaModelConfig.to_json_string, run for real.

Needs transformers 5.25, plus (for mca/) a ROLL checkout (mcore_adapter/src) and a megatron-core
core_v0.16.0 tree, given as --roll-src and --megatron-src. Without them only the first two outputs
are regenerated.
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20260818


def python_json_values(rng):
    values = [
        0.0, -0.0, 1e-06, 1e-05, 0.0001, 0.02, 0.1 + 0.2, 1 / 3, 10000.0, 1000000.0, 1e15, 1e16,
        1e+20, 1.5e+300, 5e-324, 1.7976931348623157e308, 2.5e-07, 123456789.125, -3.75,
        9007199254740993.0, 0.5, 100.0, 1e22, 1.0e-4 * 3,
        0, -1, 1, 2 ** 53 + 1, 2 ** 63 - 1, -(2 ** 63), 2 ** 64 - 1,
        True, False, None, "", "plain", "quote\" back\\slash /", "ctl\x00\x01\x1f\x7f\b\f\n\r\t",
        "caf\u00e9 \u4e2d\u6587", "emoji \U0001F600 \U00010000 \U0010FFFF", "\u2028\u2029\ufeff",
        [], {}, [[]], [{}], {"a": []}, [1, 2.0, "x", None, True],
        {"b": 1, "a": {"d": [1, {"z": 0, "_y": 1}], "c": {}}, "A": 2, "_k": 3, "\u00e9": 4, "Z": 5},
    ]
    for _ in range(40):
        values.append(rng.uniform(-1e6, 1e6))
        values.append(rng.uniform(0, 1) * 10 ** rng.randint(-30, 30))
    return values


def write_python_json_cases():
    rng = random.Random(SEED)
    cases = [{"input_text": json.dumps(v, allow_nan=False),
              "expected": json.dumps(v, indent=2, sort_keys=True)}
             for v in python_json_values(rng)]
    for name, v in (("inf", math.inf), ("-inf", -math.inf), ("nan", math.nan)):
        cases.append({"float_special": name, "expected": json.dumps(v, indent=2, sort_keys=True)})
    with open(os.path.join(HERE, "python_json_cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


def tiny_models(rng):
    """name -> (transformers config class name, kwargs)."""
    theta = rng.choice([10000.0, 500000.0, 1000000.0])
    eps = rng.choice([1e-05, 1e-06])
    return {
        "llama": ("LlamaConfig", dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                      num_hidden_layers=4, intermediate_size=96, vocab_size=128,
                                      rms_norm_eps=eps, rope_parameters={"rope_type": "default",
                                                                         "rope_theta": theta},
                                      max_position_embeddings=512)),
        "mistral": ("MistralConfig", dict(hidden_size=64, num_attention_heads=8,
                                          num_key_value_heads=2, num_hidden_layers=4,
                                          intermediate_size=160, vocab_size=96)),
        "qwen2": ("Qwen2Config", dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                      num_hidden_layers=4, intermediate_size=128, vocab_size=128,
                                      tie_word_embeddings=True, max_position_embeddings=1024)),
        "qwen3": ("Qwen3Config", dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                      head_dim=32, num_hidden_layers=6, intermediate_size=128,
                                      vocab_size=128, attention_bias=False)),
        "mixtral": ("MixtralConfig", dict(hidden_size=64, num_attention_heads=4,
                                          num_key_value_heads=4, num_hidden_layers=2,
                                          intermediate_size=64, vocab_size=128,
                                          num_local_experts=4, num_experts_per_tok=2)),
        "qwen2_moe": ("Qwen2MoeConfig", dict(hidden_size=64, num_attention_heads=4,
                                             num_key_value_heads=2, num_hidden_layers=2,
                                             intermediate_size=128, moe_intermediate_size=48,
                                             shared_expert_intermediate_size=96, num_experts=4,
                                             num_experts_per_tok=2, vocab_size=128)),
        "qwen3_moe": ("Qwen3MoeConfig", dict(hidden_size=64, num_attention_heads=4,
                                             num_key_value_heads=2, head_dim=16,
                                             num_hidden_layers=6, intermediate_size=128,
                                             moe_intermediate_size=32, num_experts=32,
                                             num_experts_per_tok=4, vocab_size=128)),
    }


# Hand-written configs that omit keys (transformers fills them in from class defaults).
SPARSE_MODELS = {
    "llama_sparse": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                     "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
                     "intermediate_size": 96, "vocab_size": 64},
    "llama_oldrope": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                      "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
                      "num_hidden_layers": 4, "intermediate_size": 96, "vocab_size": 64,
                      "rope_theta": 500000.0, "max_position_embeddings": 4096,
                      "rope_scaling": {"type": "linear", "factor": 2.0}},
    "mixtral_sparse": {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
                       "hidden_size": 64, "num_attention_heads": 8, "num_hidden_layers": 2,
                       "intermediate_size": 64, "vocab_size": 64, "num_local_experts": 4},
    "qwen3_moe_sparse": {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
                         "hidden_size": 64, "num_attention_heads": 8, "num_hidden_layers": 2,
                         "moe_intermediate_size": 32, "num_experts": 8, "vocab_size": 64},
}

# (case name, model, CLI arguments as DistributingParallelArguments fields, bf16, fp16)
CASES = [
    ("llama_tp2", "llama", {"tensor_model_parallel_size": 2}, False, False),
    ("llama_sparse_default", "llama_sparse", {}, False, False),
    ("llama_oldrope_pp2_vpp2", "llama_oldrope",
     {"pipeline_model_parallel_size": 2, "virtual_pipeline_model_parallel_size": 2}, False, False),
    ("mistral_pp2_account", "mistral",
     {"pipeline_model_parallel_size": 2, "account_for_embedding_in_pipeline_split": True,
      "account_for_loss_in_pipeline_split": True, "overlap_p2p_comm": False}, False, False),
    ("qwen2_tp2_pp2_bf16", "qwen2",
     {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2,
      "sequence_parallel": True}, True, False),
    ("qwen3_layout", "qwen3",
     {"pipeline_model_parallel_size": 2, "pipeline_model_parallel_layout": "Et|tt|tt|tL"},
     False, False),
    ("mixtral_ep2_grouped", "mixtral",
     {"expert_model_parallel_size": 2, "moe_grouped_gemm": True, "moe_aux_loss_coeff": 0.01},
     False, False),
    ("qwen2_moe_tp2_ep2", "qwen2_moe",
     {"tensor_model_parallel_size": 2, "expert_model_parallel_size": 2}, False, True),
    ("qwen3_moe_many_flags", "qwen3_moe",
     {"tensor_model_parallel_size": 2, "recompute_granularity": "full",
      "moe_token_dispatcher_type": "alltoall", "variable_seq_lengths": True,
      "transformer_impl": "local", "cuda_graph_scope": "full", "context_parallel_size": 2,
      "moe_router_dtype": "fp64", "moe_expert_capacity_factor": 1.5,
      "moe_token_drop_policy": "position", "mtp_num_layers": 0, "calculate_per_token_loss": True}, True, False),
    ("qwen3_moe_selective", "qwen3_moe",
     {"recompute_granularity": "selective", "recompute_modules": "core_attn,mlp",
      "expert_tensor_parallel_size": 1, "cuda_graph_impl": "local"}, False, False),
    ("mixtral_sparse_default", "mixtral_sparse", {}, False, False),
    ("qwen3_moe_sparse_ep2", "qwen3_moe_sparse", {"expert_model_parallel_size": 2}, False, False),
]


def write_models():
    import transformers
    rng = random.Random(SEED)
    root = os.path.join(HERE, "models")
    shutil.rmtree(root, ignore_errors=True)
    for name, (cls_name, kwargs) in tiny_models(rng).items():
        getattr(transformers, cls_name)(**kwargs).save_pretrained(os.path.join(root, name))
    for name, cfg in SPARSE_MODELS.items():
        os.makedirs(os.path.join(root, name))
        with open(os.path.join(root, name, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")


def reference_mca_config(model, args, bf16, fp16):
    from transformers import AutoConfig
    from mcore_adapter.models.converter.template import get_template
    from mcore_adapter.training_args import DistributingParallelArguments

    hf = AutoConfig.from_pretrained(os.path.join(HERE, "models", model))
    hf._name_or_path = "tiny/" + model
    dist = DistributingParallelArguments(**args)
    dist.pipeline_model_parallel_size = dist.pipeline_model_parallel_size or 1
    dist.tensor_model_parallel_size = dist.tensor_model_parallel_size or 1
    dist.expert_model_parallel_size = dist.expert_model_parallel_size or 1
    template = get_template(hf.model_type)
    mca = template.convert_hf_to_mca_config(hf, bf16=bf16, fp16=fp16, **dist.get_config_dict())
    return mca.to_json_string()


def write_mca_cases(roll_src, megatron_src):
    warnings.filterwarnings("ignore")
    sys.path[:0] = [megatron_src, roll_src]
    root = os.path.join(HERE, "mca")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    cases = []
    for name, model, args, bf16, fp16 in CASES:
        with open(os.path.join(root, name + ".json"), "w") as f:
            f.write(reference_mca_config(model, args, bf16, fp16))
        cases.append({"name": name, "model": model, "name_or_path": "tiny/" + model,
                      "args": args, "bf16": bf16, "fp16": fp16,
                      # hf_config_json of a hand-trimmed config holds transformers' filled-in
                      # defaults, which the C++ port does not reproduce.
                      "hf_config_json_exact": not model.endswith(("_sparse", "_oldrope"))})
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--roll-src", help="ROLL checkout: path of mcore_adapter/src")
    parser.add_argument("--megatron-src", help="megatron-core core_v0.16.0 tree (holds megatron/)")
    opts = parser.parse_args()
    write_python_json_cases()
    write_models()
    if opts.roll_src and opts.megatron_src:
        write_mca_cases(opts.roll_src, opts.megatron_src)


if __name__ == "__main__":
    main()
