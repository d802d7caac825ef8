"""Terminal output shared by the commands."""

from rich.console import Console

console = Console()
