"""Hello world with tasks made from classes (``Task`` with ``@run``)."""

from pyperunner import Pipeline, Runner, Task, run


class Hello(Task):
    @run
    def run(self):
        print("in Hello.run()")
        return "Hello"


class World(Task):
    @run
    def run(self, data, punctuation="!"):
        return f"{data[0]} world{punctuation}"


if __name__ == "__main__":
    pipeline = Pipeline("hello-world")
    pipeline.add(World(punctuation="!!")(Hello()))
    pipeline.summary()

    runner = Runner(data_path="pyperunner-example/data", log_path="pyperunner-example/log")
    runner.run(pipeline)
    print(pipeline["World()"])
