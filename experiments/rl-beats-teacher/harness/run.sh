#!/usr/bin/env bash
# Round 4's PyTorch probes (see ../README.md). Needs a memrl binary ($MEMRL) and a Python with
# torch and tokenizers (the bench peers' venv: .venv-peer). One thread per probe.
set -euo pipefail
cd "$(dirname "$0")"
MEMRL=${MEMRL:-../../../target/release/memrl}
PY=${PY:-../../../.venv-peer/bin/python}
mkdir -p data
two="--set entities=2 --set distractor_entities=2 --set capacity=2 --set chunk_size=1 --set questions=2 --set updates_per_key=0 --set prompt=terse --set questions_per_turn=1 --set attributes=1"
one="--set entities=1 --set distractor_entities=1 --set capacity=1 --set chunk_size=1 --set questions=1 --set updates_per_key=0 --set prompt=terse --set questions_per_turn=1 --set attributes=1"
$MEMRL env play --env facts --policy heuristic --episodes 8192 --split train $two --trace data/train.jsonl >/dev/null
$MEMRL env play --env facts --policy heuristic --episodes 256 --split validation $two --trace data/val.jsonl >/dev/null
$MEMRL env play --env facts --policy oracle --episodes 8192 --split train $one --trace data/trainO.jsonl >/dev/null
$MEMRL env play --env facts --policy oracle --episodes 256 --split validation $one --trace data/valO.jsonl >/dev/null
# A byte-level BPE with isolated spaces trained on 64 episodes, as memrl trains one for a tiny preset.
for d in "" O; do
  $PY - "$d" <<'PYEOF'
import json, sys
from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders, Regex
d = sys.argv[1]
texts = []
for line in open(f'data/train{d}.jsonl'):
    r = json.loads(line)
    if r['episode'] < 64:
        texts += [m['content'] for m in r['context']] + [r['completion']]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r'\s'), 'isolated'), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=1536, min_frequency=2, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
tok.save(f'data/tok{d}.json')
PYEOF
done
h="$PY harness.py --tok data/tok.json --train data/train.jsonl --val data/val.jsonl"
o="$PY harness.py --tok data/tokO.json --train data/trainO.jsonl --val data/valO.jsonl"
case "${1:-all}" in
  t_base) $h --steps 4000 --eval_every 500 ;;
  t_sent) $h --steps 4000 --copy 2 --eval_every 500 ;;
  t_conv6) $h --steps 4000 --copy 2 --conv 6 --eval_every 500 ;;
  o_ctrl) $o --steps 3000 --copy 2 --eval_every 250 ;;
  o_match) $o --steps 3000 --copy 2 --match 0 --eval_every 250 ;;
  o_b16) $o --steps 3000 --copy 2 --batch 16 --lr 3e-3 --eval_every 250 ;;
  o_b16m) $o --steps 2000 --copy 2 --batch 16 --lr 3e-3 --match 0 --eval_every 250 ;;
  o_3l) $o --steps 2000 --copy 2 --batch 16 --lr 3e-3 --layers 3 --heads 4 --eval_every 250 ;;
  o_128) $o --steps 1500 --copy 2 --batch 16 --lr 3e-3 --heads 4 --dim 128 --eval_every 250 ;;
  o_alibi) $o --steps 1500 --copy 2 --batch 16 --lr 3e-3 --pos alibi --eval_every 250 ;;
  o_long) $o --steps 6000 --copy 2 --batch 16 --lr 2e-3 --eval_every 500 ;;
  # Round 5: token matching (a same-token bias needs the neighbours in the values: --canon).
  o_c6) $o --steps 1500 --copy 2 --batch 16 --lr 3e-3 --dec_weight 20 --heads 2 --canon 4 --match 5 --eval_every 250 ;;
  o_c5) $o --steps 1500 --copy 2 --batch 16 --lr 3e-3 --dec_weight 20 --heads 2 --canon 4 --match 1 --eval_every 250 ;;
  o_e6) $o --steps 1500 --copy 2 --batch 16 --lr 3e-3 --dec_weight 20 --heads 2 --embshift 4 --match 5 --eval_every 250 ;;
  o_c7) $o --steps 1000 --copy 2 --batch 16 --lr 3e-3 --canon 4 --match 5 --eval_every 250 ;;
  o_m7) $o --steps 1000 --copy 2 --batch 16 --lr 3e-3 --match 5 --eval_every 250 ;;
  o_c8_h2) $o --steps 1000 --copy 2 --batch 16 --lr 3e-3 --canon 4 --match 5 --heads 2 --eval_every 250 ;;
  o_l1m1) $o --steps 1500 --copy 2 --batch 16 --lr 3e-3 --canon 4 --canon_layers 1 --match 5 --match_layers 1 --heads 2 --seed "${SEED:-0}" --eval_every 250 ;;
  o_m10) $o --steps 750 --copy 2 --batch 16 --lr 3e-3 --canon 4 --canon_layers 1 --match 10 --match_layers 1 --heads 2 --seed "${SEED:-0}" --eval_every 250 ;;
  o_cs15) $o --steps 1000 --copy 2 --batch 16 --lr 3e-3 --canon 4 --canon_layers 1 --canon_std 1.5 --match 5 --match_layers 1 --heads 2 --seed "${SEED:-0}" --eval_every 250 ;;
  all) echo "name a probe: t_base t_sent t_conv6 o_ctrl o_match o_b16 o_b16m o_3l o_128 o_alibi o_long o_c5 o_c6 o_e6 o_c7 o_m7 o_c8_h2 o_l1m1 o_m10 o_cs15 (SEED=n)" ;;
esac
