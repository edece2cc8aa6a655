"""Research harness (PyTorch, not part of memrl): how fast does a tiny Llama learn to imitate a
`facts` teacher, and which architecture changes make it faster? It trains on `memrl env play
--trace` transcripts rendered with SmolLM2's ChatML template and tokenized with a BPE trained on
them (`run.sh` makes both), and reports on held-out segments:

- mem_em / ans_em: the share of memory-turn / answer-turn completions whose every token is the
  argmax under teacher forcing, i.e. that greedy decoding reproduces exactly;
- `ans unk` / `val`: answer turns whose teacher answer is `unknown` / a value, reproduced;
- `decision`: memory turns whose ninth completion token (`":{"` = a call with arguments, or
  `":{},"` = noop) is the argmax: whether the model decides to store the fact.

Options: `--copy 1` a pointer head with a sigmoid gate, `--copy 2` with a sentinel (what memrl's
`-copy` presets implement), `--conv K` K extra shifted key projections in the pointer,
`--match B` a learned same-token attention bias (init B) in the first `--match_layers` layers,
`--canon K` a causal depthwise convolution of width K on the attention input (weights
normal(0, `--canon_std`)) in the first `--canon_layers` layers (with `--match 10 --match_layers 1
--canon 4 --canon_layers 1`, what memrl's `-match` presets implement), `--embshift K` the same
convolution on the token embeddings only, `--dec_weight W` the decision token's loss weighted W,
`--pos rope|alibi|none`, `--smear 1` smeared keys."""
import argparse, json, math, random, time
import torch, torch.nn as nn, torch.nn.functional as F
from tokenizers import Tokenizer

p = argparse.ArgumentParser()
p.add_argument('--tok', default='data/tok.json')
p.add_argument('--train', default='data/train.jsonl')
p.add_argument('--val', default='data/val.jsonl')
p.add_argument('--layers', type=int, default=2)
p.add_argument('--dim', type=int, default=64)
p.add_argument('--heads', type=int, default=8)
p.add_argument('--kv', type=int, default=0)
p.add_argument('--steps', type=int, default=4000)
p.add_argument('--batch', type=int, default=4)
p.add_argument('--lr', type=float, default=5e-3)
p.add_argument('--wd', type=float, default=0.0)
p.add_argument('--answer_copies', type=int, default=3)
p.add_argument('--seed', type=int, default=0)
p.add_argument('--eval_every', type=int, default=500)
p.add_argument('--pos', default='rope')  # rope | alibi | none
p.add_argument('--theta', type=float, default=10000)
p.add_argument('--threads', type=int, default=1)
p.add_argument('--copy', type=int, default=0)  # pointer head
p.add_argument('--smear', type=int, default=0)
p.add_argument('--conv', type=int, default=0)
p.add_argument('--match', type=float, default=-1)
p.add_argument('--embshift', type=int, default=0)  # causal depthwise conv (kernel K) on the token embeddings only
p.add_argument('--dec_weight', type=float, default=1.0)
p.add_argument('--canon_layers', type=int, default=99)
p.add_argument('--match_layers', type=int, default=99)
p.add_argument('--canon_std', type=float, default=0.5)
p.add_argument('--canon', type=int, default=0)  # causal depthwise conv (kernel K) on the attention input
p.add_argument('--min_lr', type=float, default=0.3)
p.add_argument('--warmup', type=int, default=8)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed); random.seed(a.seed)
tok = Tokenizer.from_file(a.tok)
def render(r):
    s = ''
    for m in r['context']:
        s += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
    s += '<|im_start|>assistant\n'
    return s, r['completion'] + '<|im_end|>'
def load(path):
    out = []
    for l in open(path):
        r = json.loads(l)
        pr, co = render(r)
        pi = tok.encode(pr, add_special_tokens=False).ids
        ci = tok.encode(co, add_special_tokens=False).ids
        out.append((pi, ci, 'answer' in r['completion'] and 'question_id' in r['completion']))
    return out
train = load(a.train); val = load(a.val)
V = tok.get_vocab_size()
print('train segs', len(train), 'val', len(val), 'vocab', V, 'mean len', sum(len(x[0]) + len(x[1]) for x in train) / len(train), flush=True)
pool = []
for s in train:
    pool += [s] * (a.answer_copies if s[2] else 1)

class RMS(nn.Module):
    def __init__(s, d): super().__init__(); s.w = nn.Parameter(torch.ones(d))
    def forward(s, x): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * s.w
def rope(x, pos, theta):  # x [b,h,t,d]
    d = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2).float() / d))
    f = pos[:, None].float() * inv[None]
    cos, sin = torch.cat([f.cos(), f.cos()], -1), torch.cat([f.sin(), f.sin()], -1)
    x1, x2 = x[..., :d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin
class Block(nn.Module):
    def __init__(s, d, h, kv, li=0):
        super().__init__()
        s.use_canon = a.canon and li < a.canon_layers
        s.use_match = a.match >= 0 and li < a.match_layers
        s.h, s.kv, s.hd = h, kv, d // h
        s.n1, s.n2 = RMS(d), RMS(d)
        s.q = nn.Linear(d, d, bias=False); s.k = nn.Linear(d, kv * s.hd, bias=False); s.v = nn.Linear(d, kv * s.hd, bias=False)
        s.o = nn.Linear(d, d, bias=False)
        s.g = nn.Linear(d, 3 * d, bias=False); s.u = nn.Linear(d, 3 * d, bias=False); s.dn = nn.Linear(3 * d, d, bias=False)
        if a.pos == 'alibi':
            s.slopes = torch.tensor([2 ** (-8 * (i + 1) / h) for i in range(h)])
        if a.smear: s.alpha = nn.Parameter(torch.zeros(kv))
        if s.use_match: s.beta = nn.Parameter(torch.full((h,), a.match))
        if s.use_canon: s.cw = nn.Parameter(torch.zeros(a.canon, d))
    def forward(s, x, mask, same=None):
        b, t, d = x.shape
        y = s.n1(x)
        if s.use_canon:
            y = y + sum(s.cw[k_] * torch.cat([torch.zeros_like(y[:, :k_]), y[:, :t - k_]], 1) for k_ in range(a.canon))
        q = s.q(y).view(b, t, s.h, s.hd).transpose(1, 2)
        k = s.k(y).view(b, t, s.kv, s.hd).transpose(1, 2)
        v = s.v(y).view(b, t, s.kv, s.hd).transpose(1, 2)
        pos = torch.arange(t)
        if a.pos == 'rope': q, k = rope(q, pos, a.theta), rope(k, pos, a.theta)
        if a.smear:
            sm = torch.sigmoid(s.alpha)[None, :, None, None]
            kp = torch.cat([torch.zeros_like(k[:, :, :1]), k[:, :, :-1]], 2)
            k = sm * k + (1 - sm) * kp
        rep = s.h // s.kv
        k = k.repeat_interleave(rep, 1); v = v.repeat_interleave(rep, 1)
        bias = mask
        if s.use_match: bias = bias + s.beta[None, :, None, None] * same[:, None]
        if a.pos == 'alibi':
            dist = (pos[None, :] - pos[:, None]).float()  # j - i (<=0 in causal part)
            bias = mask + s.slopes[:, None, None] * dist[None]
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + s.o(att.transpose(1, 2).reshape(b, t, d))
        y = s.n2(x)
        return x + s.dn(F.silu(s.g(y)) * s.u(y))
class Llama(nn.Module):
    def __init__(s):
        super().__init__()
        kv = a.kv or a.heads
        s.emb = nn.Embedding(V, a.dim)
        s.blocks = nn.ModuleList([Block(a.dim, a.heads, kv, li) for li in range(a.layers)])
        s.norm = RMS(a.dim)
        if a.embshift: s.ew = nn.Parameter(torch.zeros(a.embshift, a.dim))
        if a.copy:
            s.cq = nn.Linear(a.dim, a.dim, bias=False); s.ck = nn.Linear(a.dim, a.dim, bias=False); s.cg = nn.Linear(a.dim, 1)
            s.sent = nn.Parameter(torch.zeros(a.dim))
            s.ckc = nn.ModuleList([nn.Linear(a.dim, a.dim, bias=False) for _ in range(a.conv)])
        for n, p_ in s.named_parameters():
            if p_.dim() == 2: nn.init.normal_(p_, 0, 0.02)
        if a.embshift: nn.init.normal_(s.ew, 0, 0.5)
        for bl in s.blocks:
            if bl.use_canon: nn.init.normal_(bl.cw, 0, a.canon_std)
    def forward(s, ids, lens):
        b, t = ids.shape
        pad = torch.arange(t)[None] >= lens[:, None]
        causal = torch.ones(t, t).tril().bool()
        mask = torch.zeros(b, 1, t, t).masked_fill(~causal, float('-inf'))
        x = s.emb(ids)
        if a.embshift:
            x = x + sum(s.ew[k_] * torch.cat([torch.zeros_like(x[:, :k_]), x[:, :t - k_]], 1) for k_ in range(a.embshift))
        same = (ids[:, :, None] == ids[:, None, :]).float()
        for bl in s.blocks: x = bl(x, mask, same)
        h = s.norm(x)
        logp = F.log_softmax(h @ s.emb.weight.T, -1)
        if a.copy:
            kk = s.ck(h)
            for m_, lin in enumerate(s.ckc):
                sh = m_ + 1
                kk = kk + lin(torch.cat([torch.zeros_like(h[:, :sh]), h[:, :-sh]], 1))
            sc = (s.cq(h) @ kk.transpose(1, 2)) / math.sqrt(a.dim)
            sc = sc.masked_fill(~causal[None], float('-inf')).masked_fill(pad[:, None, :], float('-inf'))
            if a.copy == 2:
                ss = (s.cq(h) @ s.sent)[..., None] / math.sqrt(a.dim)
                att = F.softmax(torch.cat([sc, ss], -1), -1)
                g = att[..., -1:]; att = att[..., :-1]
            else:
                att = F.softmax(sc, -1)  # [b,t,t]
                g = torch.sigmoid(s.cg(h))
            pc = torch.zeros(b, t, V).scatter_add_(2, ids[:, None, :].expand(b, t, t), att)
            if a.copy == 2: att = att / (1 - g + 1e-9); pc = pc / (1 - g + 1e-9)
            logp = torch.log(g * logp.exp() + (1 - g) * pc + 1e-9)
        return logp
def batchify(segs):
    L = max(len(p_) + len(c) for p_, c, _ in segs)
    ids = torch.zeros(len(segs), L, dtype=torch.long); tgt = torch.full((len(segs), L), -100, dtype=torch.long)
    lens = torch.zeros(len(segs), dtype=torch.long)
    for i, (p_, c, _) in enumerate(segs):
        s_ = p_ + c
        ids[i, :len(s_)] = torch.tensor(s_); lens[i] = len(s_)
        tgt[i, len(p_) - 1:len(s_) - 1] = torch.tensor(c)
    return ids, tgt, lens
m = Llama()
opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=a.wd, betas=(0.9, 0.999))
def lr_at(st):
    if st < a.warmup: return a.lr * (st + 1) / a.warmup
    pr = (st - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (a.min_lr + (1 - a.min_lr) * 0.5 * (1 + math.cos(math.pi * pr)))
shown = []
@torch.no_grad()
def evaluate():
    m.eval(); em = {True: [0, 0], False: [0, 0]}; tokacc = [0, 0]; em2 = {'unk': [0, 0], 'val': [0, 0]}; dec = [0, 0]
    for i in range(0, len(val), 64):
        segs = val[i:i + 64]
        ids, tgt, lens = batchify(segs)
        pred = m(ids, lens).argmax(-1)
        ok = (pred == tgt) | (tgt == -100)
        for j, (_, _, isans) in enumerate(segs):
            em[isans][0] += int(ok[j].all()); em[isans][1] += 1
            if not isans:
                cpos = (tgt[j] != -100).nonzero()[:, 0]
                d = cpos[8] if len(cpos) > 8 else cpos[-1]
                dec[0] += int(ok[j, d]); dec[1] += 1
        tokacc[0] += int(((pred == tgt) & (tgt != -100)).sum()); tokacc[1] += int((tgt != -100).sum())
        for j, (p_, c, isans) in enumerate(segs):
            if not isans: continue
            txt = tok.decode(c)
            k = 'unk' if '"unknown"' in txt else 'val'
            em2[k][0] += int(ok[j].all()); em2[k][1] += 1
            if len(shown) < 6 and not ok[j].all():
                shown.append((txt, tok.decode(pred[j][tgt[j] != -100].tolist())))
    m.train()
    print('  ans unk', em2['unk'], 'val', em2['val'], 'decision', dec, flush=True)
    return em[False][0] / em[False][1], em[True][0] / max(1, em[True][1]), tokacc[0] / tokacc[1]
t0 = time.time(); run = 0.0
order = []
for st in range(a.steps):
    if len(order) < a.batch:
        order = list(range(len(pool))); random.shuffle(order)
    segs = [pool[order.pop()] for _ in range(a.batch)]
    ids, tgt, lens = batchify(segs)
    logp = m(ids, lens)
    if a.dec_weight != 1.0:
        w = (tgt != -100).float()
        for j, (p_, c, isans) in enumerate(segs):
            if not isans and len(c) > 8: w[j, len(p_) - 1 + 8] = a.dec_weight
        nl = -logp.gather(2, tgt.clamp(min=0)[..., None])[..., 0]
        loss = (nl * w).sum() / w.sum()
    else:
        loss = F.nll_loss(logp.reshape(-1, V), tgt.reshape(-1), ignore_index=-100)
    for g_ in opt.param_groups: g_['lr'] = lr_at(st)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    run = 0.98 * run + 0.02 * loss.item() if st else loss.item()
    if (st + 1) % a.eval_every == 0 or st + 1 == a.steps:
        mem, ans, ta = evaluate()
        print(f'step {st+1} nll {run:.3f} mem_em {mem:.3f} ans_em {ans:.3f} tokacc {ta:.4f} t {time.time()-t0:.0f}s', flush=True)

for x in shown: print(repr(x[0]), '->', repr(x[1]))
