/* attacks.c — the list of soak attacks (soak.h). Add a new attack here and in meson.build. */
#include "bench/soak/soak.h"

const soak_attack *const soak_attacks[] = {
    &soak_attack_heartbeat_flood, &soak_attack_handshake_slots, &soak_attack_unread_output,
    &soak_attack_partial_frames,  &soak_attack_long_waits,
};
const size_t soak_attack_count = sizeof soak_attacks / sizeof soak_attacks[0];
