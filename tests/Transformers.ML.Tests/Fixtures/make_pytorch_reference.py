"""Reference outputs of PyTorch's own Transformer layers for fixed random weights.

Run once on a machine with PyTorch (the GPU machine of the project; the computation itself runs on
the CPU in float64 so the numbers do not depend on the GPU):
    python make_pytorch_reference.py OUT_DIR
It writes pytorch_reference.safetensors: the weights under PyTorch's names, the inputs and the
outputs of nn.MultiheadAttention, nn.TransformerEncoderLayer (post-LN/ReLU and pre-LN/GELU) and
nn.TransformerDecoderLayer (post-LN, causal self-attention, cross-attention with padding).
PyTorchReferenceTests.cs loads the weights into the library's modules and compares.
"""
import sys
import torch
from torch import nn
from safetensors.torch import save_file

torch.manual_seed(20261126)
torch.set_default_dtype(torch.float64)
D, H, FF, B, T, S = 32, 4, 64, 2, 5, 7
out = {}

def put(prefix, module):
    for name, value in module.state_dict().items():
        out[f"{prefix}.{name}"] = value.detach().clone().contiguous()

def randomize(module):
    # Non-trivial LayerNorm gains and biases too, so that their names and order are really checked.
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)

x = torch.randn(B, T, D)
memory = torch.randn(B, S, D)
x_pad = torch.zeros(B, T, dtype=torch.bool); x_pad[0, 3:] = True
mem_pad = torch.zeros(B, S, dtype=torch.bool); mem_pad[1, 5:] = True
causal = nn.Transformer.generate_square_subsequent_mask(T)
out["x"], out["memory"] = x, memory
out["x_padding"], out["memory_padding"] = x_pad, mem_pad

# nn.MultiheadAttention: self-attention with causal and padding masks; cross-attention with padding.
mha = nn.MultiheadAttention(D, H, batch_first=True).eval(); randomize(mha); put("mha", mha)
y, w = mha(x, x, x, key_padding_mask=x_pad, attn_mask=causal, need_weights=True, average_attn_weights=False)
out["mha.self_out"], out["mha.self_weights"] = y, w
y, _ = mha(x, memory, memory, key_padding_mask=mem_pad)
out["mha.cross_out"] = y

for name, norm_first, act in (("enc_post_relu", False, "relu"), ("enc_pre_gelu", True, "gelu")):
    layer = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, activation=act, batch_first=True, norm_first=norm_first).eval()
    randomize(layer); put(name, layer)
    out[f"{name}.out"] = layer(x, src_key_padding_mask=x_pad)

dec = nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, activation="relu", batch_first=True, norm_first=False).eval()
randomize(dec); put("dec_post_relu", dec)
out["dec_post_relu.out"] = dec(x, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=mem_pad)

out = {k: (v.float() if v.dtype == torch.float64 else v).contiguous() for k, v in out.items()}
save_file(out, f"{sys.argv[1]}/pytorch_reference.safetensors", metadata={"torch": torch.__version__, "script": "make_pytorch_reference.py"})
print("wrote", len(out), "tensors with torch", torch.__version__)
