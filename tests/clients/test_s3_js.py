"""kmsim's S3 through the AWS SDK for JavaScript v3 (``@aws-sdk/client-s3``,
``@aws-sdk/s3-request-presigner``, ``@aws-sdk/lib-storage``) with its default configuration.

The checks live in ``js/presigned.mjs`` (Node.js, the packages pinned in ``js/package-lock.json``,
installed by ``scripts/test``); this test runs it against a kmsim of its own and reports each
check's line.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


def test_javascript_sdk_v3(fresh_kmsim):
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "@aws-sdk" / "client-s3").is_dir():
        pytest.fail("Node.js and the packages of tests/clients/js are needed: run scripts/test, which installs them")
    result = subprocess.run([node, "--no-warnings", "presigned.mjs", fresh_kmsim.endpoint], cwd=JS_DIR,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- kmsim:\n{fresh_kmsim.stderr()[-4000:]}"
    assert result.stdout.count("ok: ") == 6, result.stdout
