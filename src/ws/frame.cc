// The close-code table of RFC 6455 §7.4 as seen from the receiving side.
#include "ws/frame.h"

namespace hermod::ws {

// RFC 6455 §7.4.1-§7.4.2. Accepted: 1000-1003, 1007-1011, the IANA-registered 1012 (service
// restart), 1013 (try again later) and 1014 (bad gateway), and the application ranges
// 3000-4999. Refused: below 1000, 1004 (reserved), 1005 and 1006 (never on the wire), 1015
// (TLS failure, never on the wire) and the unassigned 1016-2999. Autobahn's 7.9.x cases
// accept either answer for 1012-1014; registered codes are more useful passed through.
bool IsValidReceivedCloseCode(uint16_t code) {
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}

}  // namespace hermod::ws
