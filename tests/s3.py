"""A throwaway S3-protocol server on 127.0.0.1 (moto's `moto_server`), for restic's s3 backend.

One server per test session (per xdist worker), one bucket made in it as an admin would
(restic 0.14 makes a missing bucket on `init` too). The keys are distinctive strings, so a
test can look for them in everything klink-sync prints or writes. `import` the `s3` fixture
into a test module. No skips: a missing moto_server fails (the test extra installs moto).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, wait_until_ready

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
ACCESS_KEY = "AKIAKLINKOFFSITE7Q3Z"
SECRET_KEY = "klink-offsite-s3-secret-5f0c9e2b7a41"


@dataclass(frozen=True)
class S3:
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def repository(self, path: str) -> str:
        """restic's repository string for a folder of the bucket."""
        return f"s3:{self.endpoint}/{self.bucket}/{path.strip('/')}"

    @property
    def secrets(self) -> tuple[str, str]:
        return self.access_key, self.secret_key

    def environment_file(self, path: Path) -> Path:
        """offsite.environment_file: the keys, mode 0600."""
        path.write_text(f"# S3 keys for restic\nAWS_ACCESS_KEY_ID={self.access_key}\n"
                        f"export AWS_SECRET_ACCESS_KEY='{self.secret_key}'\n")  # fmt: skip
        path.chmod(0o600)
        return path

    def _client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)  # fmt: skip

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every raw object of the bucket under prefix, by key, as the server stores it."""
        client = self._client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                     Prefix=prefix):  # fmt: skip
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=self.bucket,
                                                       Key=item["Key"])["Body"].read()  # fmt: skip
        return found


def _answers(endpoint: str) -> bool:
    with urllib.request.urlopen(endpoint + "/", timeout=2) as answer:  # noqa: S310
        return answer.status == 200


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> S3:
    if not MOTO_SERVER.exists():
        pytest.fail(f"{MOTO_SERVER} is missing: pip install -e '.[test]' (moto[server])")
    base = tmp_path_factory.mktemp("s3")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = base / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=out, env=env)  # fmt: skip
    try:
        wait_until_ready("moto_server", proc, log, lambda: _answers(endpoint), timeout=30)
        server = S3(endpoint, "klink-offsite-tests")
        server._client().create_bucket(Bucket=server.bucket)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
