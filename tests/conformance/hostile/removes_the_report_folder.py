"""Correct, but its import removes the folder ``BOGC_TEST_RMDIR`` (where --json points)."""

import os
import shutil

import bogc_ref

shutil.rmtree(os.environ["BOGC_TEST_RMDIR"], ignore_errors=True)
calibrate = bogc_ref.calibrate
