# kl_soname(<var> <pkg prefix> <library name>): the SONAME of lib<library name> as found by
# pkg_check_modules(<pkg prefix> ...), e.g. kl_soname(GRPC_SONAME GRPC grpc) -> libgrpc.so.29.
# Libraries the kernel binds at first use (src/runtime/dynlib.h) are opened by this name, which is
# what the runtime package installs (the unversioned libX.so belongs to the -dev package).
function(kl_soname var prefix name)
  set(file "")
  foreach(lib ${${prefix}_LINK_LIBRARIES})
    get_filename_component(base ${lib} NAME)
    if(base MATCHES "^lib${name}\\.so")
      set(file ${lib})
    endif()
  endforeach()
  if(NOT file)
    message(FATAL_ERROR "lib${name}: not among ${prefix}_LINK_LIBRARIES (${${prefix}_LINK_LIBRARIES})")
  endif()
  execute_process(COMMAND ${CMAKE_OBJDUMP} -p ${file} OUTPUT_VARIABLE dump RESULT_VARIABLE rc)
  string(REGEX MATCH "SONAME +([^\n ]+)" m "${dump}")
  if(NOT rc EQUAL 0 OR NOT m)
    message(FATAL_ERROR "no SONAME in ${file}")
  endif()
  set(${var} ${CMAKE_MATCH_1} PARENT_SCOPE)
endfunction()

# kl_bind_at_first_use(<target> <pkg prefix> <library name> <macro>): compiles <target> against
# the library's headers without linking it, and defines <macro>="<its SONAME>" for dynlib.
function(kl_bind_at_first_use target prefix name macro)
  kl_soname(soname ${prefix} ${name})
  target_include_directories(${target} PUBLIC ${${prefix}_INCLUDE_DIRS})
  target_compile_options(${target} PUBLIC ${${prefix}_CFLAGS_OTHER})
  target_compile_definitions(${target} PRIVATE ${macro}="${soname}")
  if(KL_SANITIZE OR KL_FUZZ)
    # LeakSanitizer's scan at exit crashed ("Tracer caught signal 11") in kernels that had
    # dlopen'ed gRPC (abseil and gRPC keep thread-local storage) after their threads started.
    # Sanitizer builds therefore also link the library: it is loaded before main, and dlopen
    # returns the loaded copy, so the code path stays the same.
    target_link_libraries(${target} PUBLIC PkgConfig::${prefix})
  endif()
endfunction()
