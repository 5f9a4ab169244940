"""The signing keys the fleet has been given, recorded in the database: `tether serve` signs only with one of them.

Without the record, a controller whose `$TETHER_STATE_DIR/signing` is not the fleet's (a replica started on another
machine without a copy of it, a state directory lost or moved) made a key of its own and signed every command with
it: every device refused every command, and nothing said why when it started. `tether keys rotate` and `tether keys
activate` record the keys they introduce, so that the rollover of docs/security.md keeps working with replicas.
"""

import logging

from controller.errors import StartupError
from controller.signing_keys import SigningKeys
from controller.store import Store
from shared.signing import Signer

log = logging.getLogger(__name__)


def trusted_signer(keys: SigningKeys, store: Store) -> Signer:
    """The signer of this controller's active key, once the database says the fleet was given it; StartupError in
    one line if not. Where none is recorded (a new fleet, or a database from before the record), this controller's
    keys are recorded, the first one made if it has none. One write transaction checks and records: of replicas
    starting together with different keys, the first records its own and the others are refused."""
    with store.transaction():
        recorded = store.signing_keys.recorded()
        if not recorded:
            first = keys.signer()
            held = _held(keys)
            store.signing_keys.record(held)
            log.info("recorded signing keys %s as the fleet's in %s", ", ".join(held), store.database.shown)
            return first
        signer = keys.active()
        fleet = ", ".join(recorded)
        remedy = (
            f"copy {keys.directory} from a running controller, or introduce a new key with `tether keys rotate` "
            "(docs/scale-out.md)"
        )
        if signer is None:
            raise StartupError(f"{keys.directory} holds no active signing key, and the fleet's are {fleet}: {remedy}")
        known = recorded.get(signer.key_id)
        if known is None or known.public_key != keys.public_key(signer.key_id):
            raise StartupError(
                f"this controller would sign with key {signer.key_id}, which the fleet was never given (it was given "
                f"{fleet}): {remedy}"
            )
        return signer


def introduce(keys: SigningKeys, store: Store, key_id: str) -> bool:
    """Record `key_id`, a key held here, as given to the fleet; where none is recorded yet, with this machine's other
    keys, which its agents trust already. Whether it was not recorded before."""
    public = keys.public_key(key_id)  # SigningKeyError for a key not held here
    with store.transaction():
        recorded = store.signing_keys.recorded()
        store.signing_keys.record({**(_held(keys) if not recorded else {}), key_id: public})
    return key_id not in recorded


def _held(keys: SigningKeys) -> dict[str, str]:
    return {key.key_id: key.public_key for key in keys.listing()}
