# ctest -R sdk_cpp.install: installs this build's C++ SDK into a fresh
# prefix, then configures, builds and runs examples/consumer, a separate
# CMake project that does find_package(RioClient CONFIG REQUIRED) and links
# rio::client.
#
#   cmake -DBUILD_DIR=... -DCONSUMER_DIR=... -DWORK_DIR=... -DGENERATOR=...
#         -DCXX_COMPILER=... -P install_test.cmake
foreach(var BUILD_DIR CONSUMER_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "install_test.cmake needs -D${var}=...")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(consumer_build ${WORK_DIR}/consumer-build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE result
    OUTPUT_VARIABLE output
    ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "${command}\nfailed (${result}):\n${output}")
  endif()
  set(output "${output}" PARENT_SCOPE)
endfunction()

# Only the SDK's component: what a user of the package gets.
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix}
    --component RioClient)
foreach(file
    include/rio/client.h include/rio/webhook.h include/rio/dsn.h
    include/rio/retry.h include/rio/v1/emit.pb.h include/rio/v1/emit.grpc.pb.h)
  if(NOT EXISTS ${prefix}/${file})
    message(FATAL_ERROR "cmake --install did not install ${file}")
  endif()
endforeach()
file(GLOB_RECURSE configs ${prefix}/*/RioClientConfig.cmake)
if(NOT configs)
  message(FATAL_ERROR "cmake --install did not install RioClientConfig.cmake")
endif()

run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${consumer_build}
    -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
    -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${consumer_build})
run(${consumer_build}/rio_consumer)
message(STATUS "rio_consumer: ${output}")
if(NOT output MATCHES "rio_consumer: ok")
  message(FATAL_ERROR "rio_consumer did not report ok:\n${output}")
endif()
