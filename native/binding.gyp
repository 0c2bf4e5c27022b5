{
  "targets": [
    {
      "target_name": "agent9_fuse",
      "sources": ["agent9_fuse.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)", "-lpthread"],
      "defines": ["FUSE_USE_VERSION=312", "NAPI_VERSION=8"]
    }
  ]
}
