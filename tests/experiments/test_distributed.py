"""Two gloo processes on CPU give the same calibrated encoder update as one process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bogc_ref.training.representation import RepresentationAggregator, Source

B, D_IN, D, K, WORLD = 12, 5, 4, 3, 2


def _setup(seed: int = 0):
    """Same model and global batch in every process."""
    torch.manual_seed(seed)
    enc = torch.nn.Linear(D_IN, D).double()
    lin = torch.nn.Linear(2, K).double()
    soft = torch.nn.Linear(D, K).double()
    x = torch.randn(B, D_IN, dtype=torch.float64)
    y = torch.randn(B, K, dtype=torch.float64)
    labels = torch.randint(0, K, (B,))
    mask = torch.ones(B, 2, dtype=torch.bool)
    mask[[1, 8, 9], 0] = False  # the linear source is absent on samples of both ranks
    agg = RepresentationAggregator(
        [Source(lin, "linear", slice(0, 2)), Source(soft, "softmax")], prior_var=2.0
    )
    return enc, agg, x, y, labels, mask


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        enc, agg, x, y, labels, mask = _setup()
        model = torch.nn.parallel.DistributedDataParallel(enc)
        rows = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
        h = model(x[rows])
        agg.backward(h, [y[rows], labels[rows]], mask[rows])
        if rank == 0:
            torch.save({n: p.grad for n, p in enc.named_parameters()}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_ddp_update_equals_single_process(tmp_path: Path) -> None:
    out = str(tmp_path / "grads.pt")
    os.environ.pop("MASTER_ADDR", None)
    # A file store, not a TCP port: a free port found first could be taken before gloo binds it.
    mp.spawn(_worker, args=(str(tmp_path / "store"), out), nprocs=WORLD, join=True)
    distributed = torch.load(out)

    enc, agg, x, y, labels, mask = _setup()
    agg.backward(enc(x), [y, labels], mask)
    for name, p in enc.named_parameters():
        torch.testing.assert_close(distributed[name], p.grad, rtol=1e-10, atol=1e-13)


def test_gather_rows_is_identity_without_a_process_group() -> None:
    from bogc_ref.training.distributed import all_reduce_sum, gather_rows, is_distributed

    t = torch.arange(6.0).reshape(3, 2)
    assert not is_distributed()
    assert gather_rows(t) is t
    torch.testing.assert_close(all_reduce_sum(t), t)
