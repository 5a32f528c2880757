# kl_spark: Spark Connect client (gRPC C core + protobuf-c) and the Arrow IPC reader.
pkg_check_modules(LZ4 REQUIRED IMPORTED_TARGET liblz4)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)

file(GLOB KL_SPARK_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/spark/*.c)
file(GLOB KL_SPARK_PROTOS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/spark/proto/*.proto)

set(KL_SPARK_GENERATED)
if(KL_SPARK_PROTOS)
  pkg_check_modules(PROTOBUF_C REQUIRED IMPORTED_TARGET libprotobuf-c)
  pkg_check_modules(GRPC REQUIRED IMPORTED_TARGET grpc gpr)
  find_program(PROTOC_C NAMES protoc-c protoc-gen-c REQUIRED)
  set(gen_dir ${CMAKE_BINARY_DIR}/generated/spark/proto)
  file(MAKE_DIRECTORY ${gen_dir})
  foreach(proto ${KL_SPARK_PROTOS})
    get_filename_component(base ${proto} NAME_WE)
    set(out_c ${gen_dir}/${base}.pb-c.c)
    set(out_h ${gen_dir}/${base}.pb-c.h)
    add_custom_command(
      OUTPUT ${out_c} ${out_h}
      COMMAND ${PROTOC_C} --c_out=${gen_dir} -I${CMAKE_SOURCE_DIR}/src/spark/proto ${proto}
      DEPENDS ${proto}
      COMMENT "protoc-c ${base}.proto")
    list(APPEND KL_SPARK_GENERATED ${out_c})
  endforeach()
endif()

# Generated code is not ours to keep warning-free.
if(KL_SPARK_GENERATED)
  set_source_files_properties(${KL_SPARK_GENERATED} PROPERTIES COMPILE_OPTIONS "-Wno-unused-parameter")
endif()

if(NOT KL_SPARK_SRC AND NOT KL_SPARK_GENERATED)
  set(KL_SPARK_SRC ${CMAKE_SOURCE_DIR}/cmake/empty.c)
endif()
add_library(kl_spark STATIC ${KL_SPARK_SRC} ${KL_SPARK_GENERATED})
target_include_directories(kl_spark PUBLIC ${CMAKE_BINARY_DIR}/generated)
target_link_libraries(kl_spark PUBLIC kl_runtime)
kl_bind_at_first_use(kl_spark LZ4 lz4 KL_LZ4_SONAME)
kl_bind_at_first_use(kl_spark ZSTD zstd KL_ZSTD_SONAME)
if(KL_SPARK_PROTOS)
  target_link_libraries(kl_spark PUBLIC PkgConfig::PROTOBUF_C ${CMAKE_DL_LIBS})
  kl_bind_at_first_use(kl_spark GRPC grpc KL_GRPC_SONAME)
endif()
