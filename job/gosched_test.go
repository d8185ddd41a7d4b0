package job_test

import "runtime"

func runtimeGosched() { runtime.Gosched() }
