"""Does re-estimating BatchNorm statistics on the fine-tuning mix alone (no weight change) cost small v8
its real faces? v8's trainer validation, then after 20 and 60 augmented training batches forwarded in
train mode without gradients (BN momentum 0.1: the running statistics become the mix's)."""
import json, sys, torch
import facelandmarks_smt.training.trainer as T
from facelandmarks_smt.training.cli import main

KEYS = ("val_nme", "val_nme_real", "val_nme_val_80", "val_nme_degraded_val1", "val_nme_degraded_val_hard")

def probe_run(self, **kw):
    res = {"v8": {k: round(v, 4) for k, v in self.validate().items() if k in KEYS}}
    print(json.dumps(res), flush=True)
    self.model.train()
    with torch.no_grad():
        for i, b in enumerate(self.batches.epoch_batches(0)):
            x, _ = self._inputs(b)
            with self.autocast():
                self.model(x)
            if i + 1 in (20, 60):
                res[f"bn_{i + 1}"] = {k: round(v, 4) for k, v in self.validate().items() if k in KEYS}
                print(json.dumps(res), flush=True)
                self.model.train()
            if i + 1 == 60:
                break
    json.dump(res, open("runs/bn_probe/result.json", "w"), indent=1)
    sys.exit(0)

T.Trainer.run = probe_run
main(sys.argv[1:])
