import ArgumentParser
import PosternApp

/// The executable: argument parsing only; everything else lives in PosternApp.
@main
enum PosternMain {
    static func main() async {
        await PosternCommand.main()
    }
}
