from aistack_kit.server import run

from aistack_platform.app import DEFAULT_PORT, build

if __name__ == "__main__":
    run("platform", DEFAULT_PORT, build)
