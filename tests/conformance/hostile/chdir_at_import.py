"""os.chdir while being imported: used to move a relative --json report elsewhere."""

import os

import bogc_ref

os.makedirs("elsewhere", exist_ok=True)
os.chdir("elsewhere")
calibrate = bogc_ref.calibrate
