"""Research code behind RESULTS.md (sweeps, ablations, probes): ``python -m experiments.<name>``.
The product (``msd_core``, ``app``) never imports it."""
