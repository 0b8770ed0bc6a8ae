"""Hugging Face GPT-2 reference for the library's GPT-2 import and export.

Run on a machine with PyTorch and transformers (the project's GPU machine; the numbers are computed on the CPU):
    python make_gpt2_reference.py OUT_DIR
1. Builds a tiny random GPT2LMHeadModel, saves it with save_pretrained (config.json + model.safetensors, the
   layout of checkpoints on the hub) into OUT_DIR/hf_tiny_gpt2, with reference_logits.safetensors: input ids,
   their logits, and the greedy continuation of a prompt. HuggingFaceGpt2Tests imports it and compares.
2. Loads ours_gpt2/ (written by the library's ExportToHuggingFace, committed beside this script) with
   GPT2LMHeadModel.from_pretrained and compares its logits with the library's own (our_logits.safetensors);
   the result goes to OUT_DIR/ours_in_pytorch.json.
"""
import json, os, sys
import torch
from safetensors.torch import save_file, load_file
from transformers import GPT2Config, GPT2LMHeadModel, __version__ as tv

out = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
config = GPT2Config(vocab_size=300, n_positions=64, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
                    attn_pdrop=0.0, initializer_range=0.2)
model = GPT2LMHeadModel(config).eval()
folder = os.path.join(out, "hf_tiny_gpt2")
model.save_pretrained(folder, safe_serialization=True)
ids = torch.randint(0, 300, (2, 12))
with torch.no_grad():
    logits = model(ids).logits
    prompt = ids[:1, :5].clone()
    greedy = model.generate(prompt, max_new_tokens=20, do_sample=False, pad_token_id=0, eos_token_id=None)[:, 5:]
save_file({"input_ids": ids, "logits": logits.contiguous(), "prompt": prompt.contiguous(), "greedy": greedy.contiguous()},
          os.path.join(folder, "reference_logits.safetensors"), metadata={"transformers": tv, "torch": torch.__version__})

ours = os.path.join(here, "ours_gpt2")
result = {"transformers": tv, "torch": torch.__version__}
if os.path.isdir(ours):
    theirs = GPT2LMHeadModel.from_pretrained(ours).eval()
    expected = load_file(os.path.join(ours, "our_logits.safetensors"))
    with torch.no_grad():
        got = theirs(expected["input_ids"]).logits
    result["max_abs_diff"] = float((got - expected["logits"]).abs().max())
    result["logits_shape"] = list(got.shape)
with open(os.path.join(out, "ours_in_pytorch.json"), "w") as f:
    json.dump(result, f, indent=2)
print(json.dumps(result), sorted(os.listdir(folder)))
