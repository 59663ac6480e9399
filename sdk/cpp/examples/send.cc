// Emits the seed's event into Rio.
//
//   RIO_DSN='rio://comments-app:TOKEN@127.0.0.1:50051/comments'
//   rio_send_example rio_send_example --dsn
//   'http://comments-app:TOKEN@127.0.0.1:50051/1/comments'
//       --ip 10.0.0.7 --content 'free money'     (one command line)
//
// The DSN is the "dsn" of rio.v1.ProjectService/CreateSender's reply.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "rio/client.h"

namespace {

// The JSON string literal for `text`.
std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (c < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

int Usage() {
  std::cerr << "usage: rio_send_example [--dsn DSN] [--event NAME] [--ip IP] "
               "[--content TEXT]\n"
               "  --dsn defaults to $RIO_DSN\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dsn;  // Empty: $RIO_DSN.
  std::string event = "comment-published";
  std::string ip = "127.0.0.1";
  std::string content = "I am a spammer";
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return Usage();
    const std::string value = argv[++i];
    if (flag == "--dsn") {
      dsn = value;
    } else if (flag == "--event") {
      event = value;
    } else if (flag == "--ip") {
      ip = value;
    } else if (flag == "--content") {
      content = value;
    } else {
      return Usage();
    }
  }

  rio::Client client(dsn);
  const absl::StatusOr<rio::EmitResult> result =
      client.Emit(event, "{\"ip\":" + JsonString(ip) +
                             ",\"content\":" + JsonString(content) + "}");
  if (!result.ok()) {
    std::cerr << "rio_send_example: " << result.status() << "\n";
    return 1;
  }
  std::cout << "emitted " << result->message_id << " to " << result->handlers
            << " handler(s)" << (result->duplicate ? " (duplicate)" : "")
            << "\n";
  return 0;
}
