"""The domain model of the registration API: one definition for the SDK, agent and sandbox."""

from .agency import *  # noqa: F403
from .agency import __all__ as _agency
from .applications import *  # noqa: F403
from .applications import __all__ as _applications
from .certificates import *  # noqa: F403
from .certificates import __all__ as _certificates
from .court import *  # noqa: F403
from .court import __all__ as _court
from .delivery import *  # noqa: F403
from .delivery import __all__ as _delivery
from .events import *  # noqa: F403
from .events import __all__ as _events
from .fees import *  # noqa: F403
from .fees import __all__ as _fees
from .institution import *  # noqa: F403
from .institution import __all__ as _institution
from .legal import *  # noqa: F403
from .legal import __all__ as _legal
from .materials import *  # noqa: F403
from .materials import __all__ as _materials
from .mortgage import *  # noqa: F403
from .mortgage import __all__ as _mortgage
from .parties import *  # noqa: F403
from .parties import __all__ as _parties
from .problems import *  # noqa: F403
from .problems import __all__ as _problems
from .property import *  # noqa: F403
from .property import __all__ as _property
from .status import *  # noqa: F403
from .status import __all__ as _status
from .supplements import *  # noqa: F403
from .supplements import __all__ as _supplements

__all__ = sorted(
    {
        *_agency,
        *_applications,
        *_certificates,
        *_court,
        *_delivery,
        *_events,
        *_fees,
        *_institution,
        *_legal,
        *_materials,
        *_mortgage,
        *_parties,
        *_problems,
        *_property,
        *_status,
        *_supplements,
    }
)
