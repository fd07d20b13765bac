"""The one error a refused bundle raises."""


class BundleError(Exception):
    """A bundle refused as a whole. The message names the bundle, the record and the reason."""

    def __init__(self, record: str, reason: str, bundle: str = "") -> None:
        self.record = record
        self.reason = reason
        self.bundle = bundle
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"bundle {self.bundle}: " if self.bundle else ""
        return f"{where}{self.record}: {self.reason}"

    def in_bundle(self, bundle: str) -> "BundleError":
        """The same error, naming the bundle it was found in."""
        return BundleError(self.record, self.reason, bundle)
