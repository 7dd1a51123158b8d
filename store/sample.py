"""Where the embedded sample directory lives (fictional data, loaded by default)."""

from pathlib import Path

SAMPLE_DIRECTORY = Path(__file__).with_name("sample_directory")
