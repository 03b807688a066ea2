# hermod_add_test(NAME name SOURCES a.cc b.cc LIBS lib... [LABELS l...] [ENVIRONMENT k=v...])
# One helper adds every GoogleTest binary: executable, links, discovery, labels, and the
# environment its tests run in (generator expressions allowed, e.g. $<TARGET_FILE:hermod>).
# A test without labels or environment of its own is an object library `name` (so
# target_compile_definitions(name ...) still applies to its sources) linked into one binary per
# folder, build/tests/unit_<folder>: a link and a discovery per room instead of per file (the
# ASan links were a good part of the CI's build). Test names are GoogleTest's, unchanged; ctest
# still runs each test in a process of its own.
include(GoogleTest)
function(hermod_add_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS;LABELS;ENVIRONMENT" ${ARGN})
  if(T_LABELS OR T_ENVIRONMENT)
    add_executable(${T_NAME} ${T_SOURCES})
    target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
    _hermod_test_pch(${T_NAME})
    _hermod_test_binary(${T_NAME} "${T_LABELS}" "${T_ENVIRONMENT}")
    return()
  endif()
  add_library(${T_NAME} OBJECT ${T_SOURCES})
  target_link_libraries(${T_NAME} PUBLIC ${T_LIBS} GTest::gtest)
  _hermod_test_pch(${T_NAME})
  get_filename_component(_folder ${CMAKE_CURRENT_SOURCE_DIR} NAME)
  set(_binary unit_${_folder})
  if(NOT TARGET ${_binary})
    add_executable(${_binary})
    target_link_libraries(${_binary} PRIVATE GTest::gtest_main)
    _hermod_test_binary(${_binary} "" "")
  endif()
  target_link_libraries(${_binary} PRIVATE ${T_NAME})
endfunction()

# Every test source of a preset reuses one precompiled header: GoogleTest alone is about 2 s of
# parsing in each of ~75 test sources, twice (release and asan); 32 test sources took 228 CPU
# seconds without it, 191 with it (its own build included, both at -O3). Project headers stay out
# of it, so a test still compiles only what it includes of src/.
# -Winvalid-pch (CMake's) with -Werror fails the build if a test's flags make it unusable.
function(_hermod_test_pch target)
  if(NOT TARGET hermod_test_pch)
    set(_source ${CMAKE_BINARY_DIR}/hermod_test_pch.cc)
    file(CONFIGURE OUTPUT ${_source} CONTENT "// The source the tests' precompiled header is built with.\n")
    add_library(hermod_test_pch OBJECT ${_source})
    target_link_libraries(hermod_test_pch PRIVATE GTest::gtest)
    target_precompile_headers(hermod_test_pch PRIVATE
      <gtest/gtest.h> <algorithm> <atomic> <chrono> <cstdint> <cstring> <functional> <map>
      <memory> <mutex> <optional> <set> <string> <string_view> <thread> <unordered_map>
      <utility> <vector>)
    _hermod_test_optimize(hermod_test_pch)
  endif()
  target_precompile_headers(${target} REUSE_FROM hermod_test_pch)
  _hermod_test_optimize(${target})
endfunction()

# Test sources build at -O1 in every preset: what they test (src/'s libraries, the hermod binary)
# keeps its preset's -O3, and a test source at -O1 compiles in a fraction of the time. -O1 still
# defines __OPTIMIZE__, on which simdjson's class layout depends, so tests and libraries agree.
function(_hermod_test_optimize target)
  target_compile_options(${target} PRIVATE $<$<CONFIG:Release>:-O1>)
endfunction()

function(_hermod_test_binary binary labels environment)
  set_target_properties(${binary} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  # Labels and environment are lists, which do not survive the script gtest_discover_tests
  # generates; a file that ctest reads after the discovered tests sets them on each of them.
  gtest_discover_tests(${binary} DISCOVERY_TIMEOUT 60)
  set(_labels unit ${labels})
  set(_properties "${CMAKE_CURRENT_BINARY_DIR}/${binary}_properties.cmake")
  file(GENERATE OUTPUT "${_properties}" CONTENT
"if(DEFINED ${binary}_TESTS)
  set_tests_properties(\${${binary}_TESTS} PROPERTIES
    LABELS [==[${_labels}]==] ENVIRONMENT [==[${environment}]==])
endif()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${_properties}")
endfunction()

# hermod_add_fuzzer(NAME name SOURCES a.cc LIBS lib... CORPUS dir)
# A libFuzzer target plus a short bounded run over its seed corpus as a ctest (5 s: a smoke that
# replays the corpus, then mutates; longer runs are for a developer's machine).
function(hermod_add_fuzzer)
  cmake_parse_arguments(F "" "NAME;CORPUS" "SOURCES;LIBS" ${ARGN})
  add_executable(${F_NAME} ${F_SOURCES})
  target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${F_NAME} PRIVATE ${F_LIBS})
  set_target_properties(${F_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  set(_work ${CMAKE_BINARY_DIR}/fuzz/${F_NAME}-corpus)
  add_test(NAME fuzz.${F_NAME}
    COMMAND sh -c "mkdir -p ${_work} && exec $<TARGET_FILE:${F_NAME}> -max_total_time=5 -rss_limit_mb=2048 -max_len=65536 -seed=1 ${_work} ${F_CORPUS}")
  set_tests_properties(fuzz.${F_NAME} PROPERTIES LABELS fuzz TIMEOUT 120)
endfunction()
