"""Keep the named channels of a multi-channel image (e.g. the MD map of a DTI file holding S0, MD and FA)."""

from __future__ import annotations

__all__ = ["SelectChannelsd", "channel_indices", "check_channel_count"]

from collections.abc import Hashable, Mapping, Sequence

from common.transforms._meta import source_name
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import is_no_channel
from monai.transforms import MapTransform
from monai.utils import MetaKeys


def _names(value: str | Sequence[str], argument: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"{argument} must be a non-empty list of channel names, got {value!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"{argument} names a channel twice: {list(names)}.")
    return names


def channel_indices(
    channel_names: str | Sequence[str],
    select: str | Sequence[str],
    names_key: str = "channel_names",
    select_key: str = "select",
) -> list[int]:
    """Indices of ``select`` in ``channel_names``, in the order of ``select``.

    Args:
        channel_names: the channels a file holds, in file order (e.g. ``("S0", "MD", "FA")``).
        select: the channels to keep, in the order wanted (e.g. ``["FA", "MD"]``).
        names_key: the config key (or argument) that sets ``channel_names``, for messages.
        select_key: the config key (or argument) that sets ``select``, for messages.

    Raises:
        ValueError: an empty or repeated name, or a selected name that ``channel_names`` lacks (both keys named).

    Examples::

        >>> channel_indices(("S0", "MD", "FA"), ["FA", "MD"])
        [2, 1]
    """
    names, chosen = _names(channel_names, names_key), _names(select, select_key)
    unknown = [name for name in chosen if name not in names]
    if unknown:
        raise ValueError(
            f"{select_key} {list(chosen)} names channel(s) {unknown} that {names_key} {list(names)} lacks; "
            f"select from {list(names)} or set {names_key} to the channels the file holds."
        )
    return [names.index(name) for name in chosen]


def check_channel_count(
    count: int,
    channel_names: str | Sequence[str],
    source: str = "<in memory>",
    names_key: str = "channel_names",
    select_key: str = "select",
) -> None:
    """Raise ``ValueError`` naming ``source``, both counts and the keys to set when ``count != len(channel_names)``.

    Args:
        count: channels the file holds.
        channel_names: the channels it is declared to hold.
        source: the file, for the message.
        names_key: the config key (or argument) that sets ``channel_names``.
        select_key: the config key (or argument) that picks the channels fed to the network.
    """
    names = _names(channel_names, names_key)
    if count != len(names):
        raise ValueError(
            f"{source} holds {count} channel(s) but {names_key} lists {len(names)} ({list(names)}); set "
            f"{names_key} to the channels this file holds, in file order (e.g. `--{names_key} \"['MD']\"` for a "
            f"single-channel file), and {select_key} to those the networks take."
        )


class SelectChannelsd(MapTransform):
    """Keep the channels ``select`` of channel-first images ``(C, H, W[, D])``, in the order of ``select``.

    A diffusion-tensor file holds several maps along its last axis (``common.constants.DTI_CHANNELS``: S0, MD, FA;
    MONAI's ``LoadImaged(ensure_channel_first=True)`` makes that axis the channel axis), and a model takes some of
    them. ``channel_names`` declares what the file holds, in file order; a file with another number of channels is
    refused naming the file, both counts and the config keys to set, rather than feeding the network the wrong maps.
    A single-channel file with a single declared name passes through unchanged.

    Shapes: ``(len(channel_names), *spatial) -> (len(select), *spatial)``; a ``MetaTensor`` keeps its metadata,
    except that ``original_channel_dim`` (the file's channel axis, ``-1`` for a 4D file) becomes ``"no_channel"``, as
    for a single-channel file: the channel axis is now the selection's, and a prediction that inherits this metadata
    is written like one from a single-channel file (MONAI's writer cannot save a squeezed single-slice output whose
    metadata still names a channel axis).

    Args:
        keys: channel-first images.
        channel_names: the channels each file holds, in file order.
        select: the channels to keep, in the order wanted.
        names_key: the config key that sets ``channel_names`` (named in messages, e.g. ``"dti_channel_names"``).
        select_key: the config key that sets ``select`` (e.g. ``"dti_channels"``).
        accept_selected: also take a file that holds exactly the selected channels (as many as ``select``, fewer
            than ``channel_names``), as it is: inference's convention, so a folder of files holding only the maps the
            network reads (e.g. single-channel MD maps, what the zoo's and MONAI Label's runners pass) works beside
            files holding every channel. Training keeps the strict check.
        allow_missing_keys: skip keys that are absent.

    Raises:
        ValueError: at construction, for an empty or repeated name or a selected name not in ``channel_names``; at
            call, naming the file, for a channel count other than ``len(channel_names)``.

    Examples::

        SelectChannelsd("dti", ("S0", "MD", "FA"), ["MD"])({"dti": torch.rand(3, 64, 64, 1)})  # "dti": (1, 64, 64, 1)
    """

    def __init__(
        self,
        keys: KeysCollection,
        channel_names: str | Sequence[str],
        select: str | Sequence[str],
        names_key: str = "channel_names",
        select_key: str = "select",
        accept_selected: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.accept_selected = bool(accept_selected)
        self.indices = channel_indices(channel_names, select, names_key, select_key)
        self.channel_names = _names(channel_names, names_key)
        self.names_key, self.select_key = names_key, select_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            count = int(image.shape[0])
            selected_only = self.accept_selected and count == len(self.indices) < len(self.channel_names)
            if not selected_only:
                check_channel_count(count, self.channel_names, source_name(d, key), self.names_key, self.select_key)
                if self.indices != list(range(len(self.channel_names))):
                    image = image[self.indices]
            if isinstance(image, MetaTensor) and not is_no_channel(image.meta.get(MetaKeys.ORIGINAL_CHANNEL_DIM)):
                if image is d[key]:
                    image = image.clone()
                image.meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = "no_channel"
                image.affine = image.affine  # re-derives the cached spatial_ndim from the new marker
            d[key] = image
        return d
