{
  "targets": [
    {
      "target_name": "weightpress",
      "sources": [
        "native/core/context.cpp",
        "native/core/dtype.cpp",
        "native/core/summarize.cpp",
        "native/core/pack.cpp",
        "native/core/quantize.cpp",
        "native/core/io/json.cpp",
        "native/core/io/mapped_file.cpp",
        "native/core/io/safetensors.cpp",
        "native/core/solvers/prefix.cpp",
        "native/core/solvers/kmeans_dp.cpp",
        "native/core/solvers/kmeans_lloyd.cpp",
        "native/core/solvers/uniform.cpp",
        "native/core/solvers/registry.cpp",
        "native/core/solvers/ecsq.cpp",
        "native/core/solvers/sparse.cpp",
        "native/core/entropy/huffman.cpp",
        "native/core/entropy/rans.cpp",
        "native/core/block.cpp",
        "native/addon/common.cpp",
        "native/addon/io.cpp",
        "native/addon/quant.cpp",
        "native/addon/backends.cpp",
        "native/addon/entropy.cpp",
        "native/addon/block.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "WP_VERSION=\"<!(node -p \"require('./package.json').version\")\""],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions"],
      "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17", "MACOSX_DEPLOYMENT_TARGET": "11.0"}
    }
  ]
}
