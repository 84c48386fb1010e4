"""Reference epsilons for fedtrain's RDP accountant, from Opacus (analysis/rdp.py, the same
formulas at every order of the grid) and Google's dp-accounting (RDP and PLD), for a table of
(noise multiplier z, sampling rate q, steps T, delta).

Usage: .venv/bin/python scripts/privacy_reference.py [--json] [--fedtrain .build/release/fedtrain]
(needs opacus and dp-accounting: .venv/bin/pip install opacus dp-accounting). With --fedtrain it
prints a markdown table with fedtrain's column (`fedtrain privacy epsilon`), as in
results/privacy.md. Not run by CI: its Opacus column is pasted into
Tests/FederatedTests/PrivacyTests.swift.
"""
import json
import subprocess
import sys

from script_support import ArgumentParser, require_executable, require_modules

CASES = [  # z, q, T, delta
    (1.1, 0.01, 1000, 1e-5), (0.5, 0.1, 1000, 1e-5), (1.0, 0.1, 100, 1e-5), (2.0, 0.05, 500, 1e-6),
    (0.8, 0.001, 10000, 1e-5), (4.0, 1.0, 10, 1e-5), (1.3, 0.256, 60, 1e-5), (0.7, 0.02, 3000, 1e-5),
]
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]


def main():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="one JSON object per case")
    p.add_argument("--fedtrain", help="also fedtrain's epsilon, from this executable, as a markdown table")
    args = p.parse_args()
    if args.fedtrain:
        require_executable(args.fedtrain)
    require_modules("opacus", "dp_accounting", hint=".venv/bin/pip install opacus dp-accounting")
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant
    from dp_accounting.pld import pld_privacy_accountant

    if args.fedtrain:
        print("| z | q | T | δ | fedtrain ε (order) | Opacus ε (order) | dp-accounting RDP ε | dp-accounting PLD ε |")
        print("|---|---|---|---|---|---|---|---|")
    for z, q, steps, delta in CASES:
        rdp = compute_rdp(q=q, noise_multiplier=z, steps=steps, orders=ORDERS)
        opacus_eps, opacus_order = get_privacy_spent(orders=ORDERS, rdp=rdp, delta=delta)
        event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps)
        rdp_accountant = rdp_privacy_accountant.RdpAccountant(ORDERS)
        rdp_accountant.compose(event)
        pld_accountant = pld_privacy_accountant.PLDAccountant()
        pld_accountant.compose(event)
        row = {"z": z, "q": q, "steps": steps, "delta": delta, "opacus_epsilon": float(opacus_eps),
               "opacus_order": float(opacus_order), "dp_accounting_rdp_epsilon": rdp_accountant.get_epsilon(delta),
               "dp_accounting_pld_epsilon": pld_accountant.get_epsilon(delta)}
        if args.fedtrain:
            ours = json.loads(subprocess.run([args.fedtrain, "privacy", "epsilon", "--noise-multiplier", str(z), "--sampling-rate", str(q),
                                              "--steps", str(steps), "--delta", str(delta), "--json"],
                                             check=True, capture_output=True, text=True).stdout)
            print(f"| {z} | {q} | {steps} | {delta:g} | {ours['epsilon']:.6f} ({ours['order']:g}) | {row['opacus_epsilon']:.6f} "
                  f"({row['opacus_order']:g}) | {row['dp_accounting_rdp_epsilon']:.6f} | {row['dp_accounting_pld_epsilon']:.6f} |")
            continue
        print(json.dumps(row) if args.json else
              f"z={z} q={q} T={steps} delta={delta}: opacus {row['opacus_epsilon']!r} (order {row['opacus_order']}), "
              f"dp-accounting RDP {row['dp_accounting_rdp_epsilon']!r}, PLD {row['dp_accounting_pld_epsilon']!r}")


if __name__ == "__main__":
    main()
