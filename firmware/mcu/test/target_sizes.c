/*
 * target_sizes.c: built for the Cortex-M3 only, by firmware/mcu/mcu_test.go,
 * which reads the size of each sizeof_ symbol with arm-none-eabi-nm -S: the
 * RAM each protocol struct takes on the target.
 */
#include "../cbor.h"
#include "../link.h"
#include "../proto.h"
#include "../sha256.h"

char sizeof_proto_msg[sizeof(proto_msg)];
char sizeof_proto_hello[sizeof(proto_hello)];
char sizeof_proto_telemetry[sizeof(proto_telemetry)];
char sizeof_proto_app_info[sizeof(proto_app_info)];
char sizeof_proto_deploy[sizeof(proto_deploy)];
char sizeof_proto_chunk[sizeof(proto_chunk)];
char sizeof_cbor_dec[sizeof(cbor_dec)];
char sizeof_cbor_enc[sizeof(cbor_enc)];
char sizeof_sha256_ctx[sizeof(sha256_ctx)];
char sizeof_link_dec[sizeof(link_dec)];
