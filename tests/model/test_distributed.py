"""Two-process DDP (gloo on CPU) through torchrun: ranks end with identical weights; rank 0 writes."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PBMC = Path(__file__).resolve().parents[2] / "data" / "pbmc_3chem_symphony.h5ad"
SCRIPT = textwrap.dedent("""
    import sys, torch, anndata as ad, torch.distributed as dist
    torch.set_num_threads(1)
    from scdiva import ScDiVaModel
    from scdiva.train.distributed import shutdown_distributed
    cells = ad.read_h5ad(sys.argv[1])[:128].copy()
    model = ScDiVaModel.from_config("tiny", genes=cells.var_names, seed=0, device="cpu")
    history = model.fit(cells, tasks=["masked_expression", "integration"], batch_key="donor", max_steps=2,
                        batch_size=32, progress_bar=False)
    weights = torch.cat([p.detach().flatten() for p in model.module.parameters()])
    gathered = [torch.zeros_like(weights) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, weights)
    assert dist.get_world_size() == 2 and len(history) == 2
    assert torch.equal(gathered[0], gathered[1]), "ranks diverged"
    model.save_pretrained(sys.argv[2])
    shutdown_distributed()  # as `scdiva train` ends
""")


@pytest.mark.slow
def test_torchrun_two_processes_train_in_sync(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run([*torchrun, str(script), str(PBMC), str(tmp_path / "ckpt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
