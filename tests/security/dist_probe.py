"""What a training process of a run across processes tries, for test_netguard_loopback.py: it joins
the process group as the product does (`vault.train.distributed.join_group`), proves the group works
with an all-reduce, then runs the network drill from inside. A module, not a script, because
torch.multiprocessing's spawn imports the function by name in each new process."""

from __future__ import annotations

from typing import Any


def rank(index: int, size: int, store: str, parent: dict[str, Any], targets: list[str], out: Any) -> None:
    import torch
    import torch.distributed as dist

    from vault.netguard import netcheck
    from vault.train.distributed import join_group

    checked = join_group(index, size, "gloo", store, parent)
    total = torch.tensor([float(index + 1)])
    dist.all_reduce(total)
    drills = {target: netcheck(target, timeout=1.0) for target in targets}
    out.put(
        {
            "rank": index,
            "check": checked,
            "all_reduce": float(total),
            "drills": {
                t: {"all_blocked": d["probe"]["all_blocked"], "attempts": d["probe"]["attempts"]}
                for t, d in drills.items()
            },
        }
    )
    dist.destroy_process_group()
