{
  "targets": [
    {
      "target_name": "nextray_native",
      "sources": ["src/addon.cc", "src/conv.cc", "src/pool.cc", "src/matmul.cc", "src/elementwise.cc", "src/batchnorm.cc", "src/optim.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fexceptions"],
      "libraries": ["-ldnnl", "-fopenmp"]
    }
  ]
}
