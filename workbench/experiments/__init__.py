"""One module per paper: its experiment functions and its smoke / cpu / gpu presets (one table per
notebook). A notebook calls its module and `workbench.viz`, and nothing else.

| notebook | module |
|---|---|
| 00_quickstart | `quickstart.py` |
| 01_delta_logp | `delta_logp.py` (+ `delta_logp_claims.py`: its verdicts) |
| 02_fipo | `fipo.py` (+ `fipo_claims.py`: its verdicts) |
| 03_tor | `tor.py` |
| 09_phsa | `phsa.py` (+ `phsa_niah.py`: sparse fine-tuning and NIAH) |

`compare.py` is the one multi-seed comparison loop the RL notebooks share; `claims.py` the pairing helpers
and SESOIs of their verdicts; `presets.py` resolves a notebook's preset table against its parameters.
"""
