"""Hello world with tasks made from functions (``@task``)."""

from pyperunner import Runner, Sequential, task


@task("Hello", receives_input=False)
def hello():
    print("in hello()")
    return "Hello"


@task("World")
def world(data):
    hello = data[0]
    print("in world()")
    return f"{hello} world"


if __name__ == "__main__":
    pipeline = Sequential("hello-world", [hello(), world()])
    pipeline.summary()

    runner = Runner(data_path="pyperunner-example/data", log_path="pyperunner-example/log")
    runner.run(pipeline)
    print(pipeline["World()"])
