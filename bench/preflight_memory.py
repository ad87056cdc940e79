"""The pre-flight memory estimate against the measured peak: for full tuning and LoRA, an SFT job's
trainer (the platform's own `Sft.build_trainer`) runs a few steps on CPU in a fresh process, and
the peak resident memory above what the process held before the model was made is compared with
`services/train/preflight.py`'s estimate for the same model, tuning, sequence length and batch.

    python bench/preflight_memory.py [--hidden 512] [--layers 8] [--vocab 8000] [--length 512] [--batch 4]

Prints one JSON line per setting with the estimate, the measured peak and their ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys
from dataclasses import replace
from pathlib import Path
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from services.train import preflight
from services.train.methods.base import TrainerSetup
from services.train.methods.sft import Sft
from services.train.spec import Hyperparameters, JobSpec, Lora

model_dir, tuning, length, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tokenizer = AutoTokenizer.from_pretrained(model_dir)
config = AutoConfig.from_pretrained(model_dir)
spec = JobSpec(base_model="local:///m", method="sft", tuning=tuning, training_data=[],
               hyperparameters=Hyperparameters(batch_size=batch, max_sequence_length=length), lora=Lora())
_, estimate, _, _ = preflight.memory(config, spec, length, cuda=False, dtype_bytes=4, available=1 << 50)
words = "天气很好，我们去公园散步。The weather is fine today. " * 200
rows = []
for i in range(batch * 4):
    ids = tokenizer(words, add_special_tokens=False)["input_ids"][: length - 16]
    rows.append({"messages": [{"role": "user", "content": tokenizer.decode(ids[: len(ids) // 4])},
                              {"role": "assistant", "content": tokenizer.decode(ids[len(ids) // 4 :])}]})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model = AutoModelForCausalLM.from_pretrained(model_dir)
peft_config = None
if tuning == "lora":
    from peft import LoraConfig
    peft_config = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, target_modules="all-linear")
common = dict(output_dir=sys.argv[5], per_device_train_batch_size=batch, max_steps=3, learning_rate=1e-4,
              report_to=[], disable_tqdm=True, bf16=False, dataloader_pin_memory=False, save_strategy="no")
trainer = Sft().build_trainer(TrainerSetup(common=common, model=model, ref_model=None, peft_config=peft_config,
    tokenizer=tokenizer, train=rows, validation=None, callbacks=[], max_length=length, job_dir=Path(sys.argv[5]),
    config=None))
trainer.train()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"tuning": tuning, "estimate_bytes": estimate.total, "measured_peak_bytes": peak,
                  "ratio": round(estimate.total / peak, 3), "parts": {k: v for k, v in vars(estimate).items()}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    from services.data.presets import project_texts
    from services.train.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(
            Path(tmp) / "model",
            project_texts(),
            vocab_size=args.vocab,
            hidden_size=args.hidden,
            layers=args.layers,
            heads=8,
            max_positions=max(args.length, 512),
        )
        for tuning in ("full", "lora"):
            out = Path(tmp) / tuning
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(model_dir),
                    tuning,
                    str(args.length),
                    str(args.batch),
                    str(out),
                ],
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
            )
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps({**vars(args), **result}))


if __name__ == "__main__":
    main()
