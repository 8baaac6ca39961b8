"""Exceptions raised by the library. The CLI turns each into a one-line message."""


class DiveAnalyzerError(Exception):
    """Base class for every error DiveAnalyzer raises on purpose."""

    exit_code = 2


class UsageError(DiveAnalyzerError):
    """An option or argument has a value we cannot use."""


class MediaError(DiveAnalyzerError):
    """A media file cannot be read as a video/audio file."""


class MediaNotFoundError(MediaError):
    """The path does not exist or is not a regular file."""


class EmptyMediaError(MediaError):
    """The file has zero length or holds no decodable stream."""


class NotAVideoError(MediaError):
    """The file is not a container FFmpeg can open."""


class TruncatedMediaError(MediaError):
    """The file opens but its data ends early or is corrupt."""


class ServerError(DiveAnalyzerError):
    """The live event server cannot do what was asked."""


class PortInUseError(ServerError):
    """The requested port is already taken by another program."""


class OutputError(DiveAnalyzerError):
    """An output folder or file cannot be written."""


class BrokerError(DiveAnalyzerError):
    """The event broker (``--broker redis://...``) is misconfigured."""
