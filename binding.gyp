{
  "targets": [
    {
      "target_name": "tetcd_wal",
      "sources": ["native/addon.cc", "native/writer.cc", "native/crc32c.cc", "native/sched.cc", "native/bcrypt.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra"],
      "libraries": ["-lpthread", "-lcrypt"]
    }
  ]
}
